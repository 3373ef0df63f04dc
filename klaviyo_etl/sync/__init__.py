"""The sync engine: run streams into the database under the writer lock.

Public API (used by the CLI and the scheduler), in `klaviyo_etl.sync.engine`:

    run_sync(settings, SyncOptions(streams=[...]), progress=None, stop=None) -> SyncResult

`run_sync` takes the database lock itself (raising DatabaseLocked if another run holds it),
runs the requested streams concurrently within the rate limiter, records each stream in
`sync_runs` and `sync_state`, and returns per-stream results. A failing stream does not stop
the others. Setting the `stop` event ends the run after the page being written commits.

This package module imports nothing, so `klaviyo_etl.sync.names` (stream names for the
CLI's help text and the config) stays cheap: the engine pulls in httpx and the client,
which commands such as `report` never need.
"""
