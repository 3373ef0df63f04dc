"""The README's command table and public table list, generated so they cannot drift.

Each generated part sits between two markers in README.md:

    <!-- generated: NAME -->
    ...
    <!-- end generated: NAME -->

`python -m klaviyo_etl.docs.readme` rewrites them in place; `--check` (run by `make lint`)
exits 1 and names the part when the file differs from what the code says. The commands come
from the Typer tree itself, the tables from the migrations applied to an in-memory database
(as simonw/llm documents its schema).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import sqlite_utils
import typer.main
from typer.core import TyperArgument

from klaviyo_etl.cli import app
from klaviyo_etl.cli.common import walk_commands
from klaviyo_etl.db.migrations import migrate, public_tables

README = Path(__file__).resolve().parents[2] / "README.md"
# Columns every resource table has; the table list names them once instead of on each row.
COMMON_COLUMNS = ("attributes", "synced_at", "deleted_at")


def _unescape(text: str) -> str:
    return text.replace("\\[", "[")


def _first_line(text: str | None) -> str:
    """The command's summary: its docstring up to the first blank line, on one line."""
    paragraph = _unescape(text or "").strip().split("\n\n")[0]
    return " ".join(paragraph.split()).replace("|", "\\|")


def _option(param) -> str:
    name = max(param.opts, key=len)
    if param.secondary_opts:
        name += "/" + max(param.secondary_opts, key=len)
    return f"`{name} {param.metavar}`" if param.metavar else f"`{name}`"


def _usage(path: tuple[str, ...], command) -> str:
    words = ["klaviyo-etl", *path]
    for param in command.params:
        if isinstance(param, TyperArgument):
            name = (param.metavar or param.name).upper()
            words.append(name if param.required else f"[{name}]" + ("..." if param.nargs != 1 else ""))
    return f"`{' '.join(words)}`"


def commands_table() -> str:
    """One row per command: how to call it, what it does, and its own options."""
    root = typer.main.get_command(app)
    # A group that runs on its own (`migrate`) is a command too.
    leaves = [
        (p, c)
        for p, c in walk_commands(root)
        if p and (not getattr(c, "commands", None) or getattr(c, "invoke_without_command", False))
    ]
    options = {p: [q for q in c.params if not isinstance(q, TyperArgument)] for p, c in leaves}
    reports = [opts for p, opts in options.items() if p[0] == "report" and p != ("report", "dashboard")]
    shared = set.intersection(*({_option(q) for q in opts} for opts in reports)) if reports else set()
    lines = ["| command | what it does | options |", "| --- | --- | --- |"]
    for path, command in leaves:
        own = [_option(q) for q in options[path] if not (path[0] == "report" and _option(q) in shared)]
        lines.append(f"| {_usage(path, command)} | {_first_line(command.help)} | {', '.join(own)} |")
    report_options = [_option(q) for q in reports[0] if _option(q) in shared] if reports else []
    lines += ["", f"Every report also takes {', '.join(report_options)}."]
    return "\n".join(lines)


def tables_list() -> str:
    """The public tables as the migrations create them: key and typed columns."""
    db = sqlite_utils.Database(memory=True)
    migrate(db)
    lines = [
        f"| table | key | columns (resource tables also have {', '.join(COMMON_COLUMNS)}) |",
        "| --- | --- | --- |",
    ]
    for table in map(db.table, public_tables(db)):
        keys = table.pks if table.pks != ["rowid"] else []
        columns = [c.name for c in table.columns if c.name not in (*keys, *COMMON_COLUMNS)]
        lines.append(f"| `{table.name}` | {', '.join(keys)} | {', '.join(columns)} |")
    return "\n".join(lines)


PARTS = {"commands": commands_table, "tables": tables_list}


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- generated: {name} -->\n)(.*?)(<!-- end generated: {name} -->)", flags=re.DOTALL
    )


def replace_part(text: str, name: str, body: str) -> str:
    pattern = _pattern(name)
    if not pattern.search(text):
        raise ValueError(f"README.md has no `<!-- generated: {name} -->` block")
    return pattern.sub(lambda m: m.group(1) + body.rstrip("\n") + "\n" + m.group(3), text, count=1)


def generated(text: str) -> str:
    """The README with every generated part brought up to date."""
    for name, build in PARTS.items():
        text = replace_part(text, name, build())
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if README.md is out of date")
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args(argv)
    text = args.readme.read_text(encoding="utf-8")
    fresh = generated(text)
    if args.check:
        stale = [n for n in PARTS if _pattern(n).search(text).group(2) != _pattern(n).search(fresh).group(2)]
        if stale:
            print(
                f"{args.readme}: generated part(s) out of date: {', '.join(stale)};"
                " run `make readme` (python -m klaviyo_etl.docs.readme)",
                file=sys.stderr,
            )
            return 1
        return 0
    if fresh != text:
        args.readme.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
