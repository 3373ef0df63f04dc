"""The sync engine: run streams into the database under the writer lock.

Public API (used by the CLI and the scheduler):

    run_sync(settings, SyncOptions(streams=[...]), progress=None, stop=None) -> SyncResult

`run_sync` takes the database lock itself (raising DatabaseLocked if another run holds it),
runs the requested streams concurrently within the rate limiter, records each stream in
`sync_runs` and `sync_state`, and returns per-stream results. A failing stream does not stop
the others. Setting the `stop` event ends the run after the page being written commits.
"""

from typing import Any

__all__ = ["SyncOptions", "SyncResult", "StreamResult", "run_sync"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the engine pulls in httpx and the client, which commands
    # such as `report` never need.
    if name in __all__:
        from klaviyo_etl.sync import engine

        return getattr(engine, name)
    raise AttributeError(name)
