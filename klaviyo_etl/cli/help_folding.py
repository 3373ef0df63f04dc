"""A help value wider than its column (`--db`'s default path, `KLAVIYO_ETL_REQUEST_TIMEOUT`),
folded after a separator in it rather than at the column's last cell: at 80 columns Rich's
own fold printed `/root/.local/share/klaviyo` / `-etl/klaviyo.db]` and
`KLAVIYO_ETL_REQUEST_TIMEOU` / `T]`. Loaded only to print a help (it imports Rich)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len, chop_cells
from rich.text import Text

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Lines

# A value is cut after one of these: a path's folders, an env var's words, a URL's parts.
SEPARATORS = "/_-.,:;=&?"
_WORD = re.compile(r"\S+")


def separator_cuts(word: str, width: int) -> list[int]:
    """Where to cut `word` so that each piece fits in `width` cells: after the last separator
    that fits, or at the width where none does (a piece of separators only would be no help)."""
    cuts: list[int] = []
    start = 0
    while cell_len(word[start:]) > width:
        head = chop_cells(word[start:], width)[0]
        cut = max(head.rfind(separator) for separator in SEPARATORS) + 1
        if cut <= 1:  # none, or only a leading one ("/root"): cut at the width
            cut = len(head)
        start += cut
        cuts.append(start)
    return cuts


class FoldedAtSeparators(Text):
    """Text whose words wider than the line break after a separator (`separator_cuts`); the
    rest wraps at spaces as Rich wraps it."""

    @classmethod
    def of(cls, text: Text) -> FoldedAtSeparators:
        return cls(
            text.plain,
            style=text.style,
            justify=text.justify,
            overflow="fold",  # what no separator saves is still folded, never cut with "…"
            no_wrap=text.no_wrap,
            end=text.end,
            tab_size=text.tab_size,
            spans=list(text.spans),
        )

    def wrap(self, console: Console, width: int, **options: Any) -> Lines:
        cuts = [
            word.start() + cut
            for word in _WORD.finditer(self.plain)
            if cell_len(word[0]) > width
            for cut in separator_cuts(word[0], width)
        ]
        if not cuts:
            return super().wrap(console, width, **options)
        # Each piece on a line of its own: Rich then wraps the lines as usual.
        broken = self.blank_copy("\n").join(self.divide(cuts))
        return Text.wrap(broken, console, width, **options)
