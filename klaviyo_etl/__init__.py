"""klaviyo-etl: Klaviyo into SQLite, kept fresh, reported on."""

__version__ = "0.1.0"
REVISION = "2026-07-15"  # the Klaviyo API revision we are written and tested against
