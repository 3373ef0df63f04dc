"""Words people read in reports, status lines and sync output: "1 anomaly", "2 anomalies"."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None, *, grouped: bool = False) -> str:
    """`n` and `noun` in the number it takes: "1 bucket", "0 buckets", "3 anomalies"
    (`plural` when adding an s is wrong); `grouped` writes thousands as 1,234."""
    number = f"{n:,}" if grouped else str(n)
    return f"{number} {noun if n == 1 else plural or noun + 's'}"
