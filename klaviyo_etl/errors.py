"""Typed errors. Inside the library they carry detail; at the CLI edge each becomes one line.

The class says what the caller must do: a `TransientError` is retried by the client, a
`FatalError` stops the whole sync run (every stream would fail the same way), and any
other `ApiError` fails only the stream that met it.

Our exception hierarchy:

* KlaviyoEtlError
  + UsageError
  |  + ConfigError
  + DatabaseError
  |  + DatabaseLocked
  + ApiError
  |  + BadRequest
  |  + AuthError                     (403: a missing scope fails its stream only)
  |  |  + KeyRejected                (401, also a FatalError)
  |  + NotFound
  |  + RevisionRetired               (410, also a FatalError)
  + StreamSkipped                    (skip-and-note: this stream cannot run here; the run goes on)
  + PaginationLoop                   (a next link repeats: fails its stream, the others go on)
  + FatalError                       (stop the run: 401, 410)
  |  + Unreachable                   (no connection before any answer: wrong URL, server down)
  + TransientError                   (retry: 5xx, 429, dropped connection, truncated body)
     + RateLimited
"""

from __future__ import annotations


class KlaviyoEtlError(Exception):
    """Base class: anything the CLI should print as one line and exit non-zero."""

    exit_code = 1


class UsageError(KlaviyoEtlError):
    """The user asked for something that cannot be done (bad option, unknown stream)."""

    exit_code = 2


def refuse_blank(option: str, value: str | None, wanted: str) -> None:
    """A blank value the user typed (an unset shell variable) is a UsageError naming what to
    give, never read as the option's default: "--channel is empty: give one of email, ..."."""
    if value is not None and not value.strip():
        raise UsageError(f"{option} is empty: give {wanted}")


class ConfigError(UsageError):
    """Missing or invalid configuration (API key, config file, database path)."""


class DatabaseError(KlaviyoEtlError):
    """The database cannot be used (newer schema, locked, unreadable)."""

    exit_code = 2


class NoDatabase(DatabaseError):
    """No database file where one is needed: a sync creates it."""


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


class StreamSkipped(KlaviyoEtlError):
    """Skip-and-note: a stream that cannot run under this key says why and ends as skipped.

    The run goes on and its exit code is unaffected; `sync_runs` and `status` keep the reason.
    For a stream the tool can do without (the account, shown for display only).
    """


class PaginationLoop(KlaviyoEtlError):
    """A page's next link is one this walk already followed: reading on would loop for ever,
    holding the database lock against every later run. Fails the stream; the next sync tries
    again from its stored watermark."""


class FatalError(KlaviyoEtlError):
    """Stops the whole run: the key or the revision is wrong for every stream alike."""


class Unreachable(FatalError):
    """The first connection to the base URL failed (refused, unknown host): no stream can run.

    Once the server has answered, a failed connection is a `TransientError` again.
    """


class AuthError(ApiError):
    """401/403: key rejected or lacking a scope: a configuration problem."""

    exit_code = 2


class KeyRejected(AuthError, FatalError):
    """401: the API key was rejected."""


class NotFound(ApiError):
    """404."""


class RevisionRetired(ApiError, FatalError):
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
