"""Typed errors. Inside the library they carry detail; at the CLI edge each becomes one line."""

from __future__ import annotations


class KlaviyoEtlError(Exception):
    """Base class: anything the CLI should print as one line and exit non-zero."""

    exit_code = 1


class UsageError(KlaviyoEtlError):
    """The user asked for something that cannot be done (bad option, unknown stream)."""

    exit_code = 2


class ConfigError(UsageError):
    """Missing or invalid configuration (API key, config file, database path)."""


class DatabaseError(KlaviyoEtlError):
    """The database cannot be used (newer schema, locked, unreadable)."""

    exit_code = 2


class DatabaseLocked(DatabaseError):
    """Another sync holds the database lock."""


class ApiError(KlaviyoEtlError):
    """Klaviyo answered with an error we do not retry."""

    def __init__(self, status: int, message: str, *, path: str = "", detail: str = ""):
        self.status = status
        self.path = path
        self.detail = detail
        super().__init__(f"{status}: {message}")


class BadRequest(ApiError):
    """400: the request was malformed (bad filter, bad revision)."""


class AuthError(ApiError):
    """401/403: key rejected or lacking a scope: a configuration problem."""

    exit_code = 2


class NotFound(ApiError):
    """404."""


class RevisionRetired(ApiError):
    """410: the pinned API revision is no longer served."""

    exit_code = 2


class TransientError(KlaviyoEtlError):
    """A failure worth retrying (5xx, 429, dropped connection, truncated body)."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None):
        self.status = status
        self.retry_after = retry_after
        super().__init__(message)


class RateLimited(TransientError):
    """429 with the server's Retry-After."""
