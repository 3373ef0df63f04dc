"""Analytics on the local database: every `klaviyo-etl report` as a library call.

Each report function takes a sqlite-utils Database and plain parameters and returns a
`Report` (columns, rows, period, meta, notes) that `render.render` prints as a table, JSON,
CSV or HTML:

- `overview.overview_report(db, period, compare)`
- `messages.campaign_report(db, period, compare, channel=, sort=, limit=, source=)`
- `messages.flow_report(db, period, by=, channel=, sort=, limit=, source=, compare=)`
- `compare.compare_report(db, "campaign-values" | "flow-values", period, channel=)`
- `audience.form_report`, `audience.segment_report`, `audience.list_report`
  `(db, period, compare, sort=, limit=)`
- `timeseries.metric_report(db, name, period, interval=, measure=, window=, threshold=,
  forecast=, method=, compare=)`
- `customers.rfm_report(db, period, compare, by=)`, `customers.cohort_report(db, period)`
- `html.dashboard_html(db, period, compare)` -> one self-contained HTML page

Periods come from `periods.resolve_period(from_=, to=, last=)` and
`periods.compare_period(period, "previous" | "year")`; each report counts them in the days of
its database's account (`periods.account_periods(db, period, compare)`, as Klaviyo
counts them; UTC when no account is synced). The rollup tables behind the fast
reports are kept current by `klaviyo_etl.db.rollups.refresh_rollups(db, since)` (the sync engine) and
`ensure_rollups(db)` (every report).
"""
