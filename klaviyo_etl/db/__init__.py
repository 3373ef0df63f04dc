"""SQLite storage: the public tables analysts query, their migrations and repositories.

The package itself imports nothing: a sync takes the writer lock (`klaviyo_etl.db.lock`)
before its first request, and that must not load sqlite-utils and the migrations (issue 12:
start-up). The names below load on first use, as in `klaviyo_etl.sandbox`.
"""

from typing import Any

__all__ = ["open_database", "migrate", "migration_status", "SCHEMA_VERSION"]
_LAZY = {
    "open_database": "database",
    "migrate": "migrations",
    "migration_status": "migrations",
    "SCHEMA_VERSION": "migrations",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"klaviyo_etl.db.{_LAZY[name]}"), name)
    raise AttributeError(name)
