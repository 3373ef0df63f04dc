"""What every command module shares: the settings of the root command, the error handling, and
the tidying of the command tree that Typer builds (help metavars, markup, global options).

A leaf: it imports no command module, so `cli/__init__` can import them all without a cycle.
"""

from __future__ import annotations

from collections.abc import Iterator

import typer
from rich.markup import escape
from typer.core import TyperArgument, TyperGroup

from klaviyo_etl.errors import KlaviyoEtlError
from klaviyo_etl.settings import Settings

# Typer 0.29 labels each value with its Python type (`<str>`, `<float range>`) and flags with
# `<bool>` as if they took a value. Options show these words instead (Click's own), and flags
# none; an option that says what it wants (`metavar="DATE"`) keeps its word.
_METAVARS = {str: "TEXT", int: "INTEGER", float: "NUMBER"}


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code)


def walk_commands(command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    """Every command of the tree, depth first, with the words that reach it."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from walk_commands(sub, (*path, name))


def _tidy_help(command) -> None:
    """Fix what Typer's help would print wrong: metavars, and brackets read as Rich markup.

    Idempotent: the root runs it again for the options Typer adds late (shell completion).
    """
    rich = getattr(command, "rich_markup_mode", "rich") == "rich"
    if rich and command.help and not getattr(command, "_help_tidied", False):
        command.help = escape(command.help)  # `[default: …]` would vanish as an unknown tag
    command._help_tidied = True
    help_option = command.get_help_option(typer.Context(command))
    for param in [*command.params, *([help_option] if help_option else [])]:
        if getattr(param, "_help_tidied", False):
            continue
        param._help_tidied = True
        if rich and param.help:
            param.help = escape(param.help)
        if isinstance(param, TyperArgument) or param.metavar is not None:
            continue
        if param.is_flag or param.count:
            param.metavar = ""  # a flag takes no value: show none
        else:
            annotation = param.type_descriptor.annotation
            path = param.type_descriptor.is_path
            param.metavar = "PATH" if path else _METAVARS.get(annotation, "TEXT")


def hoist_global_options(root, args: list[str]) -> list[str]:
    """Move the root's options found after the subcommand in front of it.

    `klaviyo-etl sync all --quiet` then means `klaviyo-etl --quiet sync all`, as cron lines and
    people type it. An option the subcommand declares itself stays with it; eager options
    (`--help`, `--version`) are left alone, so `sync --help` still shows the help of `sync`.
    Order is kept, so when an option is given on both sides the later one wins.
    """
    takes_value: dict[str, bool] = {}
    for param in root.params:
        if isinstance(param, TyperArgument) or param.is_eager:
            continue
        for name in (*param.opts, *param.secondary_opts):
            takes_value[name] = not (param.is_flag or param.count)

    def option_name(token: str) -> str:
        return token.split("=", 1)[0]

    front: list[str] = []
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "--":  # before the subcommand
        front.append(args[i])
        i += 1
        if takes_value.get(option_name(front[-1])) and "=" not in front[-1] and i < len(args):
            front.append(args[i])
            i += 1
    # The subcommand's own option names, along the path of groups down to the command.
    own: set[str] = set()
    command, j = root, i
    while j < len(args) and hasattr(command, "commands"):
        if args[j].startswith("-"):
            j += 1
            continue
        command = command.commands.get(args[j])
        if command is None:
            break
        own.update(name for param in command.params for name in (*param.opts, *param.secondary_opts))
        j += 1
    hoisted: list[str] = []
    rest: list[str] = []
    while i < len(args):
        token = args[i]
        i += 1
        if token == "--":
            rest.extend(args[i - 1 :])
            break
        name = option_name(token)
        if name in takes_value and name not in own:
            hoisted.append(token)
            if takes_value[name] and "=" not in token and i < len(args):
                hoisted.append(args[i])
                i += 1
        else:
            rest.append(token)
    return front + hoisted + rest


class ErrorHandlingGroup(TyperGroup):
    """The root group: one line and an exit code for every library error, never a traceback.

    It also tidies the help of the whole tree once (see `_tidy_help`), and accepts the global
    options on either side of the subcommand (see `hoist_global_options`).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for _, command in walk_commands(self):
            _tidy_help(command)

    def get_params(self, ctx):
        _tidy_help(self)  # Typer adds --install-completion and --show-completion after __init__
        return super().get_params(ctx)

    def parse_args(self, ctx, args):
        if ctx.parent is None:
            args = hoist_global_options(self, list(args))
        return super().parse_args(ctx, args)

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
