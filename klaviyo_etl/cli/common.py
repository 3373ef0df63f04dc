"""What every command module shares: the settings of the root command, the error handling, the
tidying of the command tree that Typer builds (help metavars, markup, global options), and the
root's lazy table of commands (start-up time).

A leaf: it imports no command module, so `cli/__init__` can name them all without a cycle.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import functools
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import typer
from typer._click.exceptions import BadParameter, MissingParameter, NoArgsIsHelpError
from typer._click.exceptions import UsageError as ClickUsageError
from typer._coercion import RuntimeParam, build_runtime_param
from typer._param_types import coerce_cli_path, routes_to_path
from typer.core import TyperArgument, TyperCommand, TyperGroup
from typer.main import get_group

from klaviyo_etl.errors import KlaviyoEtlError, UsageError
from klaviyo_etl.settings import Settings
from klaviyo_etl.timeutil import log_stamp

if TYPE_CHECKING:
    from rich.table import Table

# Typer 0.29 labels each value with its Python type (`<str>`, `<float range>`) and flags with
# `<bool>` as if they took a value. Options show these words instead (Click's own), and flags
# none; an option that says what it wants (`metavar="DATE"`) keeps its word.
_METAVARS = {str: "TEXT", int: "INTEGER", float: "NUMBER"}


# What Rich would read as a markup tag: `[bold]`, `[/]`, `[default: x]` (after any backslashes).
_MARKUP_TAG = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")


def escape(markup: str) -> str:
    """`rich.markup.escape`: text Rich prints as it is. Here, so a command that prints no help
    (a sync) loads none of Rich (28 modules, ~0.01 s of its start: issue 12); the test
    compares the two."""
    markup = _MARKUP_TAG.sub(lambda match: f"{match[1]}{match[1]}\\{match[2]}", markup)
    if markup.endswith("\\") and not markup.endswith("\\\\"):
        return markup + "\\"
    return markup


# `ctx.meta` key set by a run whose lines go to a log, not a person: a scheduled `sync --due`
# off a terminal (the crontab line's). Its other lines carry the time (`LogProgress`), so its
# errors do too, and each run's lines in the log can be told apart.
LOG_TIMES = "klaviyo_etl.log_times"


def echo_line(ctx: typer.Context | None, text: str, *, err: bool = False) -> None:
    """`typer.echo`, with the time in front when the run writes a log (see LOG_TIMES)."""
    if ctx is not None and ctx.meta.get(LOG_TIMES):
        text = f"{log_stamp()} {text}"
    typer.echo(text, err=err)


def _fail(message: str, code: int, ctx: typer.Context | None = None) -> typer.Exit:
    echo_line(ctx, f"Error: {message}", err=True)
    return typer.Exit(code)


@dataclass(frozen=True)
class PlainValues(RuntimeParam):
    """Typer's coercion of one parameter's value, without pydantic where none is needed.

    Typer 0.29 (pinned) checks every value that is not a flag through a pydantic TypeAdapter
    built on first use, so any command imports pydantic (~0.07 s of `report campaigns`, issue
    12) even when every value is a default or a plain string. Here a str for a str, strings
    for a list of str (`sync events`), an int or float within its bounds, and a path (through
    Typer's own `coerce_cli_path`) pass as Typer would pass them; anything else (a number to
    parse, a bad value, another list, a choice) goes to Typer's own coercion, built then, with
    its own messages. None never gets here
    (`RuntimeParam.coerce` answers it).
    """

    def _coerce_value(self, value, param, ctx):
        annotation, info = self.annotation, self.parameter_info
        if annotation is Path and value == "":  # Typer would read it as `.`, the current folder
            raise typer.BadParameter("the path is empty; give a file or folder", ctx=ctx, param=param)
        plain = info.parser is None and getattr(info, "click_type", None) is None
        if plain and annotation is str and type(value) is str:
            return value
        if plain and annotation == list[str] and type(value) in (tuple, list):
            if all(type(item) is str for item in value):
                return list(value)  # what Typer's TypeAdapter(list[str]) makes of them
        if plain and annotation in (int, float) and type(value) is annotation and _in_bounds(value, info):
            return value
        if plain and annotation is Path and info.path_type is None and routes_to_path(annotation, info):
            if isinstance(value, str) and value and "\x00" not in value:
                value = Path(value)  # what Typer's pydantic step makes of a path's text
            if isinstance(value, Path):
                return coerce_cli_path(value, info, path_type=Path, param=param, ctx=ctx)
        typer_own = build_runtime_param(param.type_descriptor)
        param._runtime_param = typer_own
        try:
            return typer_own._coerce_value(value, param=param, ctx=ctx)
        except BadParameter as exc:
            exc.message = _value_words(value, exc)
            raise


def _value_words(value, exc: BadParameter) -> str:
    """Typer's message for a value it refused, naming the value: pydantic's "Input should be a
    valid integer, unable to parse string as an integer" becomes "'x' should be a valid
    integer", and "Input should be greater than or equal to 1" "0 should be ..."."""
    message = exc.message
    if not message.startswith("Input ") or isinstance(value, (list, tuple)):
        return message
    try:
        float(value)
        shown = str(value)  # a number: as typed
    except (TypeError, ValueError):
        shown = repr(value)
    return shown + message[len("Input") :].split(", unable to")[0]


def usage_line(exc: ClickUsageError) -> str:
    """A usage error of the CLI framework (a bad value, an unknown option or command, a missing
    argument) as one line: its message, and for all but a bad value the help to read. Typer
    printed the usage, a hint and the message in a box: five lines or more."""
    message = exc.format_message().strip().rstrip(".")
    if isinstance(exc, MissingParameter) or not isinstance(exc, BadParameter):
        ctx = exc.ctx
        if ctx is not None:
            message += f" (see `{ctx.command_path} --help`)"
    return message


def _in_bounds(value, info) -> bool:
    low, high = info.min, info.max
    return not info.clamp and (low is None or value >= low) and (high is None or value <= high)


def _plain_values(param) -> None:
    """Give a Typer parameter `PlainValues` unless Typer built its coercion already."""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is not None and getattr(param, "_runtime_param", False) is None:
        param._runtime_param = PlainValues(descriptor.parameter_info, descriptor.annotation)


def walk_commands(command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    """Every command of the tree, depth first, with the words that reach it."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from walk_commands(sub, (*path, name))


def check_output_file(path: Path, option: str) -> None:
    """Refuse, before any work, a file to write that cannot be one: a folder, or a file in a
    folder that does not exist (what `open` would only say after the report was built)."""
    try:
        if path.is_dir():
            raise UsageError(f"{option} {path} is a folder: give the path of a file to write")
        if not path.parent.is_dir():
            raise UsageError(f"{option} {path}: the folder {path.parent} does not exist; create it first")
    except OSError as exc:  # a name longer than the system takes: "unexpected OSError"
        raise output_error(path, option, exc) from None


def word_choice(value: str | None) -> str | None:
    """An option that takes one of a few words, as --last and --compare take them: any case,
    spaces around (`-f JSON`, `--channel Email` and `--interval Day` were refused). A typer
    option callback."""
    return value.strip().lower() if isinstance(value, str) else value


def output_error(path: Path, option: str, exc: OSError) -> UsageError:
    """The one-line error for a file to write that the system refused (permissions, disk)."""
    return UsageError(f"cannot write {option} {path}: {exc.strerror or exc}")


@contextmanager
def replacing(path: Path, option: str) -> Iterator[TextIO]:
    """A handle whose text replaces the file `path` only once all of it is written: a report
    that fails part way (a wrong --format or --columns, a full disk) leaves the file as it was.
    Before, the file was emptied first, and yesterday's report was lost to a typo.

    A path that is no regular file (`/dev/stdout`, a pipe) is written as it is: replacing
    it would put a file where the device was. A symlink's target is replaced, not the link."""
    if path.exists() and not path.is_file():  # (both follow a symlink)
        try:
            with open(path, "w", encoding="utf-8") as handle:
                yield handle
        except OSError as exc:
            raise output_error(path, option, exc) from None
        return
    target = path.resolve() if path.is_symlink() else path
    if target.exists() and not os.access(target, os.W_OK):  # a file made read-only stays as it is
        raise output_error(path, option, PermissionError(errno.EACCES, os.strerror(errno.EACCES)))
    aside: Path | None = None
    try:
        # A short name of its own: the file's name and more may be longer than the system takes.
        fd, name = tempfile.mkstemp(prefix=".klaviyo-etl-", suffix=".tmp", dir=target.parent)
        aside = Path(name)
        with open(fd, "w", encoding="utf-8") as handle:
            yield handle
        if target.exists():
            shutil.copymode(target, aside)  # a file the user made private stays private
        else:
            os.chmod(aside, 0o666 & ~_umask())  # as `open` would have made it, not mkstemp's 0600
        os.replace(aside, target)
        aside = None
    except OSError as exc:
        raise output_error(path, option, exc) from None
    finally:
        if aside is not None:
            with contextlib.suppress(OSError):
                aside.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def unboxed_to_fit(table: Table, width: int | None) -> None:
    """`table` without its box lines when it is wider than `width` boxed (None: any width), as
    a report fitted to the terminal is (`reports.render.to_table`): its cells get the room."""
    from rich import box
    from rich.console import Console

    if width is not None and Console(width=1000).measure(table).maximum > width:
        table.box, table.show_edge, table.pad_edge, table.padding = (
            box.SIMPLE_HEAD,
            False,
            False,
            (0, 1, 0, 0),
        )


def flow_paragraphs(text: str) -> str:
    """Each paragraph of a docstring as one line, for the terminal to wrap: Typer keeps the
    line breaks of a help's later paragraphs, and at 80 columns each source line wrapped on
    its own ("... on every row);" / "an account" / "whose database ..."). An indented block
    (an example) keeps its lines; Typer dedents what follows the first line of the later
    paragraphs, so a block keeps its indent only under an unindented line ("For example:")."""
    paragraphs = text.split("\n\n")
    return "\n\n".join(
        p if any(line.startswith(" ") for line in p.splitlines()) else " ".join(p.split("\n"))
        for p in paragraphs
    )


def _format_help_folded(format_help: Callable, ctx, formatter) -> None:
    """Print a command's help with `fold_help_values` in force (Typer's Rich help loads only
    to print a help, so it is patched then, not on every run)."""
    fold_help_values()
    return format_help(ctx, formatter)


def fold_help_values() -> None:
    """An option's env var or default wider than the help column is folded onto the next line
    after a separator in it (`help_folding`) rather than cut with "…" (at 80 columns `--db`'s
    default path and `KLAVIYO_ETL_REQUEST_TIMEOUT` were cut, and `sandbox serve`'s
    `--rate-limit-scale` name with them). Typer builds those texts with Rich's default
    overflow and no setting for it."""
    from rich.text import Text
    from typer import rich_utils

    from klaviyo_etl.cli.help_folding import FoldedAtSeparators

    original = rich_utils._get_parameter_help
    if getattr(original, "folds", False):
        return

    def folded(**kwargs):
        columns = original(**kwargs)
        columns.renderables = [
            FoldedAtSeparators.of(item) if isinstance(item, Text) else item for item in columns.renderables
        ]
        return columns

    folded.folds = True  # type: ignore[attr-defined]
    rich_utils._get_parameter_help = folded
    # One space between the options table's columns, not two: the empty columns (short names,
    # `--no-…` forms) cost less, and the names keep their width at 80 columns.
    rich_utils.STYLE_OPTIONS_TABLE_PADDING = (0, 1, 0, 0)


def _tidy_help(command) -> None:
    """Fix what Typer's help would print wrong: metavars, and brackets read as Rich markup.

    Idempotent: the root runs it again for the options Typer adds late (shell completion).
    """
    rich = getattr(command, "rich_markup_mode", "rich") == "rich"
    if not getattr(command, "_help_tidied", False):
        if rich and command.help:
            command.help = escape(flow_paragraphs(command.help))  # `[default: …]` would vanish as a tag
        command.format_help = functools.partial(_format_help_folded, command.format_help)
    command._help_tidied = True

    help_option = command.get_help_option(typer.Context(command))
    for param in [*command.params, *([help_option] if help_option else [])]:
        _plain_values(param)
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


def typer_command(name: str, target: typer.Typer | Callable) -> TyperCommand | TyperGroup:
    """The click command Typer builds for `target` (a command function or a Typer of its own)
    registered as `name`, exactly as `app.command(name)` or `app.add_typer(target, name=name)`
    on a root with Typer's default settings would build it."""
    holder = typer.Typer()
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name)
    else:
        holder.command(name)(target)
    return get_group(holder).commands[name]


class LazyCommands(MutableMapping):
    """The root's commands by name, each built from its module the first time it is looked up.

    Typer builds every command of a tree up front, so the root would import every command
    module, and through them the reports, sqlite-utils and the sync, to print `--help` (issue
    12: start in < 0.3 s). This table knows each command's name and the summary the root's
    `--help` lists; `load(name)` imports the module and returns the command. Running a command
    loads that one; the root's `--help` shows the summaries (`listing`); walking the tree
    (`.items()`, the docs, the tests) loads them all.
    """

    def __init__(self, summaries: dict[str, str], load: Callable[[str], TyperCommand | TyperGroup]):
        self._summaries = summaries
        self._load = load
        self._commands: dict[str, object] = {}
        self.listing = False  # True while the root prints its --help: summaries will do

    def __getitem__(self, name: str):
        if name in self._commands:
            return self._commands[name]
        if name not in self._summaries:
            raise KeyError(name)
        if self.listing:  # what the root's --help reads of a command: its name and summary
            return TyperCommand(name=name, help=escape(self._summaries[name]))  # as `_tidy_help`
        command = self._load(name)
        for _, sub in walk_commands(command):
            _tidy_help(sub)
        self._commands[name] = command
        return command

    def __setitem__(self, name: str, command) -> None:
        self._commands[name] = command

    def __delitem__(self, name: str) -> None:
        self._summaries.pop(name, None)
        self._commands.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        yield from self._summaries
        yield from (name for name in self._commands if name not in self._summaries)

    def __len__(self) -> int:
        return len(set(self._summaries) | set(self._commands))


# What our own output's non-ASCII characters become on a stream that cannot encode them.
PLAIN = {"—": "-", "–": "-", "−": "-", "…": "...", "·": "-", "→": "->", "≥": ">=", "±": "+/-", "•": "*"}
UNENCODABLE = "klaviyo-etl-plain"


def _plain(exc: UnicodeError) -> tuple[str, int]:
    """A codec error handler: our punctuation in ASCII (`PLAIN`), anything else "?"."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    return "".join(PLAIN.get(c, "?") for c in exc.object[exc.start : exc.end]), exc.end


codecs.register_error(UNENCODABLE, _plain)


def replace_what_cannot_be_encoded() -> None:
    """Let stdout and stderr write a stand-in for a character their encoding lacks (a
    report's "—" on PYTHONIOENCODING=ascii, or LANG=C): output degrades instead of failing
    with "unexpected UnicodeEncodeError" after half a report."""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors=UNENCODABLE)


class ErrorHandlingGroup(TyperGroup):
    """The root group: one line and an exit code for every library error, never a traceback.

    It also tidies the help of the whole tree once (see `_tidy_help`; a lazy table of commands
    tidies each as it loads), and accepts the global options on either side of the subcommand
    (see `hoist_global_options`).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for _, command in walk_commands(self):
            _tidy_help(command)

    def get_params(self, ctx):
        _tidy_help(self)  # Typer adds --install-completion and --show-completion after __init__
        return super().get_params(ctx)

    def format_help(self, ctx, formatter):
        commands = self.commands
        if not isinstance(commands, LazyCommands):
            return super().format_help(ctx, formatter)
        commands.listing = True  # list the summaries without importing every command module
        try:
            return super().format_help(ctx, formatter)
        finally:
            commands.listing = False

    def main(self, *args, **kwargs):
        replace_what_cannot_be_encoded()
        return super().main(*args, **kwargs)

    def parse_args(self, ctx, args):
        if ctx.parent is None:
            args = hoist_global_options(self, list(args))
        try:
            return super().parse_args(ctx, args)
        except NoArgsIsHelpError:
            raise  # the help, printed already
        except ClickUsageError as exc:  # the root's own options
            raise _fail(usage_line(exc), exc.exit_code) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except NoArgsIsHelpError:
            raise
        except ClickUsageError as exc:  # a subcommand's options and arguments, or its name
            raise _fail(usage_line(exc), exc.exit_code) from None
        except KlaviyoEtlError as exc:
            raise _fail(str(exc), exc.exit_code, ctx) from None
        except KeyboardInterrupt:
            raise _fail("interrupted", 130, ctx) from None
        except Exception as exc:
            if type(exc).__module__.startswith(("typer", "click")):
                raise  # Exit, Abort and usage errors are the CLI framework's own signals
            if isinstance(exc, BrokenPipeError):
                raise  # the reader left (`| head`): Click exits 1 without a word, as it should
            settings = ctx.obj if isinstance(ctx.obj, Settings) else None
            if settings and settings.verbose:
                raise
            if _disk_full(exc):  # no bug: "unexpected OperationalError: database or disk is full"
                raise _fail(
                    f"the disk is full ({exc}): free space where the database (or the file written)"
                    " is, then run this again; what was stored before is kept, and a sync resumes"
                    " from it",
                    1,
                    ctx,
                ) from None
            # a bug: still one line; the traceback only with --verbose
            raise _fail(f"unexpected {type(exc).__name__}: {exc} (rerun with --verbose)", 1, ctx) from None


def _disk_full(exc: BaseException) -> bool:
    """SQLite's SQLITE_FULL (13), or the system's ENOSPC: told without importing sqlite3."""
    return getattr(exc, "sqlite_errorcode", None) == 13 or (
        isinstance(exc, OSError) and exc.errno == errno.ENOSPC
    )


def settings_of(ctx: typer.Context) -> Settings:
    """The global options, which the root command's callback put on the root context."""
    return ctx.find_root().obj
