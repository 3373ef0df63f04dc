"""The benchmarks, one module per benchmark; `make bench` runs them all (`__main__`).

- `sync`: throughput against the sandbox under Klaviyo's real limits, and peak memory;
- `ingest`: the repositories against a plain `sqlite3.executemany`;
- `report_timing`: the rollup refresh and `report campaigns` / `report overview` on a large
  database built by `build_bench_db` (also used by the rollup tests);
- `export`: `export parquet` throughput and peak memory on a database from `build_bench_db`.
"""
