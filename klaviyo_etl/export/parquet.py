"""`export parquet`: every public table as Parquet files in a folder, rewritten only where changed.

Layout (hive style, so DuckDB, Spark, Trino and BigQuery read the folder as tables):

    DIR/events/date=YYYY-MM-DD/part-0.parquet    one file per day of `events.datetime` (UTC)
    DIR/<table>/<table>.parquet                   every other public table, one snapshot file

Each table is a folder, so an engine points at `DIR/<table>` the same way for all of them.
Several accounts share one folder: an export given `account=NAME` writes the same files one
level down, under the hive partition `account=NAME` of each table's folder

    DIR/events/account=NAME/date=YYYY-MM-DD/part-0.parquet
    DIR/<table>/account=NAME/<table>.parquet

so that an engine reads every account as one table with an `account` column (the files do not
repeat it: see `schema`). One folder holds one layout or the other, never both: an export
refuses a folder laid out the other way. An account taken out of the config leaves its
partitions behind, and every engine would go on counting its rows: the export of every
configured account (`--all-accounts`) removes them (`remove_account`, under that account's
lock), and an export of some says which accounts they are (`account_partitions`).
Events whose `datetime` is missing land in `date=__HIVE_DEFAULT_PARTITION__` (the name Hive
and Spark read as a null partition); so does an empty file when there are no events at all, so
that an engine finds the table and its columns (with no file, DuckDB and Spark refuse the
folder: "No files found", "Unable to infer schema"). A time that is not ISO 8601 (none comes from Klaviyo) has
no value of a timestamp column: the export stops, naming the table, column and row, rather than
write it as NULL. Rows flagged deleted are exported with
`deleted_at` set, as the database keeps them (filter `deleted_at IS NULL` as the reports do);
erased personal data is NULL in the database, so it is NULL in the files; rows purged from the
database leave the files at the next export. Column types: `klaviyo_etl.export.schema`.

Incremental: `_exports` records, per folder and per file, the change marker the file was written
at; a file whose marker still matches (and which is still on disk) is not written again.
- a day of events: count, rowid sum, newest `synced_at`, count and newest `deleted_at` of its
  rows. Every path that changes an event moves one of them: an upsert (new or re-read) stamps
  `synced_at`, reconciliation and privacy erasure stamp `deleted_at`, a purge removes rows, and
  an event that moves to another day leaves one count and joins another. One grouped scan of
  the table, ~0.6 s per million events;
- any other table: its row count and a checksum of every column of every row (crc32 summed),
  so even an update that stamps nothing (an erasure of rows flagged long ago, `tag_links`,
  which has no stamps) rewrites the file;
- both include the schema's digest, so a new column rewrites all.

Atomic: a file is written under a hidden temporary name in its own folder (`.part-0.parquet.
<pid>.tmp`, which readers skip), fsynced, then `os.replace`d over the old one, and only then
recorded. A crash leaves every file either the previous or the new version, each readable; the
next export rewrites what was not recorded and sweeps the temporary files left behind.

One export at a time per folder (per account's partitions, with `account`): an export holds
`DIR/.klaviyo-etl-export.lock` (`DIR/.klaviyo-etl-export.account=NAME.lock`; flock, so the
kernel frees it if the process dies), and a second one is refused at once. Without it, the
second export's sweep took the first one's temporary file from under it (the first died with
a FileNotFoundError), and both removed and wrote the same partitions. Two accounts write
different files, so they may be exported into one folder at the same time.
A folder that cannot be written (read-only, full, a file where a table's folder should be) is
a one-line usage error naming the path.

Memory stays bounded: rows are read with `fetchmany` and written batch by batch through one
`ParquetWriter` per file (one row group per batch), never a whole table or day at once.
"""

from __future__ import annotations

import os
import shutil
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlite_utils
from filelock import FileLock, Timeout

from klaviyo_etl.db.migrations import public_tables
from klaviyo_etl.errors import DatabaseError, UsageError
from klaviyo_etl.export.schema import (
    ACCOUNT_PARTITION,
    COLUMNS,
    FLAG,
    JSON,
    ORDER_BY,
    TIME,
    schema_fingerprint,
    table_schema,
)
from klaviyo_etl.timeutil import parse_time, utcnow_iso

EVENTS = "events"
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
PART_FILE = "part-0.parquet"
# Hidden (readers skip it) and at the folder's top, outside every table's folder.
LOCK_FILE = ".klaviyo-etl-export.lock"
BATCH_ROWS = 20_000
# An event's day: the date of its stored ISO `datetime` (UTC), NULL when it has none.
_DAY_SQL = (
    "CASE WHEN substr(datetime, 1, 10) GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'"
    " THEN substr(datetime, 1, 10) END"
)
_ROW_CRC = "_export_row_crc"

OnBatch = Callable[[str, int], None]


@dataclass
class ExportResult:
    """What one export did, by file path relative to the folder."""

    target: str
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    rows: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "written": self.written,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "rows": self.rows,
        }


def _row_crc(*values: Any) -> int:
    return zlib.crc32(repr(values).encode())


def check_schema(db: sqlite_utils.Database) -> list[str]:
    """The public tables, after making sure each column has an export type (else refuse)."""
    tables = public_tables(db)
    for table in tables:
        if table not in COLUMNS:
            raise DatabaseError(f"table {table} has no Parquet schema in klaviyo_etl/export/schema.py")
        stored = [c.name for c in db[table].columns]
        missing = [c for c in stored if c not in COLUMNS[table]]
        gone = [c for c in COLUMNS[table] if c not in stored]
        if missing or gone:
            raise DatabaseError(
                f"{table}: the database and klaviyo_etl/export/schema.py disagree"
                f" (no type for {missing or 'nothing'}; not in the database: {gone or 'nothing'})"
            )
    return tables


def _times(values: tuple) -> pa.Array:
    text = pa.array(values, pa.string()) if all(v is None or isinstance(v, str) for v in values) else None
    if text is not None:
        try:
            return pc.cast(text, TIME)
        except pa.ArrowInvalid:
            pass  # a value without a zone or a date alone: read each one as the rest of the tool does
    parsed = []
    for index, value in enumerate(values):
        try:
            parsed.append(None if value in (None, "") else parse_time(str(value)))
        except ValueError:
            raise _Unreadable(index, f"{value!r} is not an ISO 8601 time") from None
    return pa.array(parsed, TIME)


class _Unreadable(Exception):
    """A stored value that has no value of its column's export type, at `index` of its batch."""

    def __init__(self, index: int | None, problem: str):
        super().__init__(problem)
        self.index = index


def _array(values: tuple, kind: pa.DataType) -> pa.Array:
    if kind == TIME:
        return _times(values)
    if kind == FLAG:
        return pa.array([None if v is None else bool(v) for v in values], kind)
    try:
        return pa.array(values, kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        if pa.types.is_string(kind) or kind == JSON:  # SQLite's loose typing: a number in a text column
            return pa.array([None if v is None else str(v) for v in values], kind)
        raise _Unreadable(None, f"a value does not read as {kind}") from None


def _batches(
    db: sqlite_utils.Database,
    table: str,
    where: str,
    params: tuple,
    schema: pa.Schema,
    batch_rows: int,
) -> Iterator[pa.RecordBatch]:
    columns = COLUMNS[table]
    json_columns = [c for c, kind in columns.items() if kind == JSON]
    # After the columns, 1 for each JSON value that is not JSON (SQLite checks it, in C).
    names = ", ".join(
        [
            *(f"[{c}]" for c in columns),
            *(f"[{c}] IS NOT NULL AND NOT json_valid([{c}])" for c in json_columns),
        ]
    )
    order = ", ".join(f"[{c}]" for c in ORDER_BY.get(table, ("id",)))
    cursor = db.conn.execute(f"SELECT {names} FROM [{table}] {where} ORDER BY {order}", params)
    key = [list(columns).index(c) for c in ORDER_BY.get(table, ("id",))]
    try:
        while rows := cursor.fetchmany(batch_rows):
            arrays = []
            values_of = list(zip(*rows, strict=True))
            for name, flags in zip(json_columns, values_of[len(columns) :], strict=True):
                if any(flags):
                    bad = next(i for i, flag in enumerate(flags) if flag)
                    text = str(rows[bad][list(columns).index(name)])
                    shown = text if len(text) <= 40 else f"{text[:40]}…"
                    raise DatabaseError(
                        f"{table}.{name} of the row {_row_key(rows[bad], key, columns)}: {shown!r} is not"
                        " JSON; correct or delete it in the database, then export again"
                    )
            for values, (name, kind) in zip(values_of[: len(columns)], columns.items(), strict=True):
                try:
                    arrays.append(_array(values, kind))
                except _Unreadable as exc:
                    row = (
                        "" if exc.index is None else f" of the row {_row_key(rows[exc.index], key, columns)}"
                    )
                    raise DatabaseError(
                        f"{table}.{name}{row}: {exc}; correct or delete it in the database, then export again"
                    ) from None
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)
    finally:
        cursor.close()


def _row_key(row: tuple, key: list[int], columns: dict[str, pa.DataType]) -> str:
    names = list(columns)
    return ", ".join(f"{names[i]}={row[i]!r}" for i in key)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _cannot_write(path: Path, exc: OSError) -> UsageError:
    # pyarrow's own OSErrors carry no strerror, only "Failed to open local file ... Detail: ...".
    reason = exc.strerror or str(exc).rsplit("Detail: ", 1)[-1]
    return UsageError(f"cannot write {path}: {reason}; export into a folder you can write")


def write_atomically(
    path: Path, schema: pa.Schema, batches: Iterator[pa.RecordBatch], on_batch: Callable[[int], None]
) -> int:
    """Write `batches` as the Parquet file `path` (aside, fsync, rename); the rows written.

    An OSError of the file system (read-only, full, a file in the way) is a UsageError."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    rows = 0
    new_folder = not path.parent.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with pq.ParquetWriter(str(tmp), schema) as writer:
            for batch in batches:
                writer.write_batch(batch)
                rows += batch.num_rows
                on_batch(rows)
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)  # the rename itself survives a power cut
    except OSError as exc:
        _remove_quietly(tmp, new_folder)
        raise _cannot_write(path, exc) from None
    except BaseException:
        _remove_quietly(tmp, new_folder)
        raise
    return rows


def _remove_quietly(tmp: Path, new_folder: bool) -> None:
    """Remove the temporary file, and its folder if this export made it (an empty partition)."""
    try:
        tmp.unlink(missing_ok=True)
        if new_folder and not any(tmp.parent.iterdir()):
            tmp.parent.rmdir()
    except OSError:  # the folder that refused the file refuses its removal too
        pass


@contextmanager
def folder_lock(root: Path, account: str | None = None) -> Iterator[None]:
    """Hold the export lock of the folder `root` (of `account`'s partitions in it), or raise a
    UsageError at once (see the module)."""
    path = root / (
        LOCK_FILE if account is None else LOCK_FILE.replace(".lock", f".{ACCOUNT_PARTITION}={account}.lock")
    )
    lock = FileLock(str(path), timeout=0, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        whose = "" if account is None else f" of account {account}"
        raise UsageError(
            f"another export{whose} is writing into {root} (lock {path}): wait for it to end, or"
            " export into another folder"
        ) from None
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    try:
        yield
    finally:
        lock.release()


def account_partitions(target: str | Path) -> set[str]:
    """The accounts with an `account=NAME` partition in any table's folder of `target`."""
    root = Path(target).expanduser()
    return {p.name.split("=", 1)[1] for p in root.glob(f"*/{ACCOUNT_PARTITION}=*") if p.is_dir()}


def remove_account(target: str | Path, account: str) -> list[str]:
    """Remove `account`'s partition of every table's folder of `target` (its files and nothing
    else), under its export lock; the folders removed, relative to `target`."""
    root = Path(target).expanduser()
    removed = []
    with folder_lock(root, account):
        for table in sorted(p.name for p in root.iterdir() if p.is_dir()):  # a table of old too
            folder = root / _folder(table, account)
            if not folder.is_dir():
                continue
            try:
                shutil.rmtree(folder)
            except OSError as exc:
                raise _cannot_write(folder, exc) from None
            removed.append(_folder(table, account))
    return removed


def _event_markers(db: sqlite_utils.Database, prefix: str) -> dict[str | None, str]:
    sql = (
        f"SELECT {_DAY_SQL} AS day, count(*), total(rowid), max(synced_at), count(deleted_at),"
        f" max(deleted_at) FROM events GROUP BY day"
    )
    return {day: "|".join(map(str, (prefix, *rest))) for day, *rest in db.execute(sql)}


def _table_marker(db: sqlite_utils.Database, table: str, prefix: str) -> str:
    columns = ", ".join(f"[{c}]" for c in COLUMNS[table])
    count, checksum = db.execute(f"SELECT count(*), sum({_ROW_CRC}({columns})) FROM [{table}]").fetchone()
    return f"{prefix}|{count}|{checksum}"


def _folder(table: str, account: str | None) -> str:
    """Where `table`'s files go, relative to the export folder: its own folder, or its
    account's partition of it."""
    return table if account is None else f"{table}/{ACCOUNT_PARTITION}={account}"


def _partition(day: str | None, account: str | None) -> str:
    return f"{_folder(EVENTS, account)}/date={day if day is not None else NULL_PARTITION}"


def _day_query(day: str | None) -> tuple[str, tuple]:
    if day is None:
        return f"WHERE ({_DAY_SQL}) IS NULL", ()
    # The range lets SQLite walk the datetime index; the substr keeps exactly the day's rows.
    return "WHERE datetime >= ? AND datetime < ? || char(1114111) AND substr(datetime, 1, 10) = ?", (
        day,
        day,
        day,
    )


def _sweep_temporaries(target: Path, account: str | None) -> None:
    """Remove the temporary files a crashed export of this account left behind (not another's)."""
    for table in COLUMNS:
        folder = target / _folder(table, account)
        for tmp in [*folder.glob(".*.tmp"), *(folder.glob("*/.*.tmp") if table == EVENTS else [])]:
            tmp.unlink(missing_ok=True)


def _check_layout(root: Path, account: str | None) -> None:
    """Refuse to mix one account's layout and several accounts' in one folder: an engine would
    read the files of both as one table."""
    if account is None and next(root.glob(f"*/{ACCOUNT_PARTITION}=*"), None):
        raise UsageError(
            f"{root} holds an export of several accounts ({ACCOUNT_PARTITION}=NAME folders):"
            " export into it with --account NAME or --all-accounts, or choose another folder"
        )
    if account is not None and next(
        (p for p in [*root.glob("*/*.parquet"), *root.glob(f"{EVENTS}/date=*")]), None
    ):
        raise UsageError(
            f"{root} holds the export of a single account (without --account):"
            " choose another folder for several accounts"
        )


def export_parquet(
    db: sqlite_utils.Database,
    target: str | Path,
    *,
    account: str | None = None,
    full: bool = False,
    batch_rows: int = BATCH_ROWS,
    on_batch: OnBatch | None = None,
) -> ExportResult:
    """Write every public table of `db` into the folder `target` as Parquet (see the module).

    `account` writes the files under each table's `account=NAME` partition (several accounts
    in one folder, see the module); `full` rewrites every file whatever the markers say.
    `on_batch(path, rows)` is called after each batch is written (the tests crash an export
    through it).
    """
    root = Path(target).expanduser()
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is not a folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {root}: {exc.strerror or exc}") from None
    with folder_lock(root, account):
        return _export(db, root, account=account, full=full, batch_rows=batch_rows, on_batch=on_batch)


def _export(
    db: sqlite_utils.Database,
    root: Path,
    *,
    account: str | None,
    full: bool,
    batch_rows: int,
    on_batch: OnBatch | None,
) -> ExportResult:
    """`export_parquet`'s work, under the folder's lock."""
    key = str(root.resolve())
    tables = check_schema(db)
    _check_layout(root, account)
    db.conn.create_function(_ROW_CRC, -1, _row_crc, deterministic=True)
    _sweep_temporaries(root, account)
    previous = {
        item: marker
        for item, marker in db.execute("SELECT item, marker FROM _exports WHERE target = ?", [key])
    }
    result = ExportResult(target=key)

    def write(item: str, relative: str, marker: str, table: str, where: str, params: tuple) -> None:
        path = root / relative
        if not full and previous.get(item) == marker and path.exists():
            result.unchanged += 1
            return
        schema = table_schema(table)
        batches = _batches(db, table, where, params, schema, batch_rows)
        rows = write_atomically(path, schema, batches, lambda n: on_batch(relative, n) if on_batch else None)
        db.execute(
            "INSERT OR REPLACE INTO _exports (target, item, marker, rows, exported_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [key, item, marker, rows, utcnow_iso()],
        )
        result.written.append(relative)
        result.rows += rows

    for table in tables:
        prefix = f"{schema_fingerprint(table)}|{account or ''}"
        folder = _folder(table, account)
        if table != EVENTS:
            marker = _table_marker(db, table, prefix)
            write(folder, f"{folder}/{table}.parquet", marker, table, "", ())
            continue
        # No events (none synced yet, or only other streams): one empty file in the null
        # partition, so the table's columns are in the folder like every other table's.
        markers = _event_markers(db, prefix) or {None: f"{prefix}|no events"}
        for day in sorted(markers, key=lambda d: d or ""):
            where, params = _day_query(day)
            item = _partition(day, account)
            write(item, f"{item}/{PART_FILE}", markers[day], EVENTS, where, params)
        current = {_partition(day, account) for day in markers}
        stale = {item for item in previous if item.startswith(f"{folder}/date=")}
        stale |= {f"{folder}/{p.parent.name}" for p in root.glob(f"{folder}/date=*/{PART_FILE}")}
        for item in sorted(stale - current):
            path = root / item / PART_FILE
            try:
                if path.exists():
                    path.unlink()
                    result.removed.append(f"{item}/{PART_FILE}")
                if path.parent.is_dir() and not any(path.parent.iterdir()):
                    path.parent.rmdir()
            except OSError as exc:
                raise _cannot_write(path, exc) from None
            db.execute("DELETE FROM _exports WHERE target = ? AND item = ?", [key, item])
    return result
