"""SQLite storage: the public tables analysts query, their migrations and repositories."""

from klaviyo_etl.db.database import open_database
from klaviyo_etl.db.migrations import SCHEMA_VERSION, migrate, migration_status

__all__ = ["open_database", "migrate", "migration_status", "SCHEMA_VERSION"]
