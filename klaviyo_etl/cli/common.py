"""What every command module shares: the settings of the root command and the error handling.

A leaf: it imports no command module, so `cli/__init__` can import them all without a cycle.
"""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from klaviyo_etl.errors import KlaviyoEtlError
from klaviyo_etl.settings import Settings


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code)


class ErrorHandlingGroup(TyperGroup):
    """Turn every library error into one line on stderr and an exit code, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KlaviyoEtlError as exc:
            raise _fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise _fail("interrupted", 130) from None
        except Exception as exc:
            if type(exc).__module__.startswith(("typer", "click")):
                raise  # Exit, Abort and usage errors are the CLI framework's own signals
            settings = ctx.obj if isinstance(ctx.obj, Settings) else None
            if settings and settings.verbose:
                raise
            # a bug: still one line; the traceback only with --verbose
            raise _fail(f"unexpected {type(exc).__name__}: {exc} (rerun with --verbose)", 1) from None


def settings_of(ctx: typer.Context) -> Settings:
    """The global options, which the root command's callback put on the root context."""
    return ctx.find_root().obj
