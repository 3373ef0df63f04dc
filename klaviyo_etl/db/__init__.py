"""SQLite storage: the public tables analysts query, their migrations and repositories.

The package itself loads nothing heavy: a sync takes the writer lock (`klaviyo_etl.db.lock`)
before its first request, and that must not load sqlite-utils and the migrations (issue 12:
start-up). The names below load on first use (`klaviyo_etl.lazy`, as in `klaviyo_etl.sandbox`).
"""

from klaviyo_etl.lazy import lazy_names

__all__ = ["open_database", "migrate", "migration_status", "SCHEMA_VERSION"]
__getattr__ = lazy_names(
    __name__,
    {
        "open_database": "database",
        "migrate": "migrations",
        "migration_status": "migrations",
        "SCHEMA_VERSION": "migrations",
    },
)
