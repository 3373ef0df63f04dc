"""The warehouse path: the database written out as files other engines read.

- `schema`: the Arrow type of every public column, in one place;
- `parquet`: `export_parquet(db, folder)`, incremental and atomic per file; `remove_account`
  takes an account's partitions out of a several-accounts folder.

Reads the database only through `db` (and records what it wrote in `_exports`); the CLI's
`export parquet` command is a thin shell over `export_parquet`.
"""

from klaviyo_etl.export.parquet import ExportResult, account_partitions, export_parquet, remove_account

__all__ = ["ExportResult", "account_partitions", "export_parquet", "remove_account"]
