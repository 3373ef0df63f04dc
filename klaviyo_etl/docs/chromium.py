"""Headless Chromium (Debian's package) for looking at the HTML dashboard as a person would.

The flags keep Chromium off the network: on a closed machine its background connections
and component updates otherwise fail, many at a time, at every start.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def run_chromium(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run headless Chromium with `args` in a throwaway profile; raises if it fails."""
    chromium = find_chromium()
    if chromium is None:
        raise FileNotFoundError("chromium is not installed (make chromium installs it where it may)")
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [chromium, *FLAGS, f"--user-data-dir={profile}", *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
