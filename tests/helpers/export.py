"""Reading an exported folder back: DuckDB queries, and which files an export rewrote."""

from __future__ import annotations

from pathlib import Path

import duckdb


def query(sql: str) -> list[tuple]:
    """Rows of `sql` run by DuckDB (in memory) over the exported files."""
    with duckdb.connect() as con:
        return con.execute(sql).fetchall()


def scan(root: Path, table: str) -> str:
    """The DuckDB table function reading `table` from the folder, with its hive partitions as
    columns (the events' `date`; `account` when several accounts share the folder)."""
    return f"read_parquet('{root}/{table}/**/*.parquet', hive_partitioning=true)"


def files(root: Path) -> dict[str, tuple[int, int]]:
    """Every Parquet file under `root` by relative path: (inode, mtime) tells a rewrite."""
    return {
        str(p.relative_to(root)): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*.parquet"))
    }


def touched(before: dict, after: dict) -> set[str]:
    """The files of `after` that are new or were replaced since `before`."""
    return {path for path in after if before.get(path) != after[path]}
