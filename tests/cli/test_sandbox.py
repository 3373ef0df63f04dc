"""`klaviyo-etl sandbox serve` in a real process: prints where to connect, serves, and stops
cleanly on Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import httpx

from tests.helpers.sandbox import REVISION


def _as_in_the_foreground() -> None:
    """Ctrl-C reaches a command run in the foreground, whose SIGINT is not ignored. A suite run
    in the background (`nohup make test &`) starts every process with SIGINT ignored, and the
    sandbox then never saw the test's Ctrl-C (both tests below timed out)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def serve(*args: str) -> tuple[subprocess.Popen, dict[str, str]]:
    """`sandbox serve --port 0 ARGS` in a process, and the settings it prints (URL and key)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "klaviyo_etl", "sandbox", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=_as_in_the_foreground,
    )
    printed = "".join(process.stdout.readline() for _ in range(4))
    return process, dict(re.findall(r"(KLAVIYO_BASE_URL|KLAVIYO_API_KEY)=(\S+)", printed))


def test_serve_prints_url_and_key_and_stops_on_ctrl_c() -> None:
    process, printed = serve("--profiles", "40", "--events", "400", "--seed", "5")
    try:
        url, key = printed["KLAVIYO_BASE_URL"], printed["KLAVIYO_API_KEY"]
        response = httpx.get(
            f"{url}/api/profiles",
            params={"page[size]": "100"},
            headers={"Authorization": f"Klaviyo-API-Key {key}", "revision": REVISION},
        )
        assert response.status_code == 200
        assert len(response.json()["data"]) == 40
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert "Traceback" not in stderr and "stopped" in stdout


def refused(*args: str, timeout: float) -> subprocess.CompletedProcess:
    """`sandbox serve` of a small account with `args`, expected to refuse and exit."""
    return subprocess.run(
        [sys.executable, "-m", "klaviyo_etl", "sandbox", "serve", "--profiles", "5", "--events", "10", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_port_in_use_is_a_one_line_error() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = refused("--port", str(port), timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("Error: cannot listen on")
    assert "Traceback" not in result.stderr


def test_stats_json_is_written_when_the_sandbox_is_terminated(tmp_path) -> None:
    stats = tmp_path / "stats.json"
    process, printed = serve("--profiles", "20", "--events", "50", "--stats-json", str(stats))
    try:
        url = printed["KLAVIYO_BASE_URL"]
        assert httpx.get(f"{url}/api/profiles").status_code == 401  # counted too
        assert not stats.exists()
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0 and "Traceback" not in stderr
    written = json.loads(stats.read_text())
    assert (written["requests"], written["early"], written["by_status"]) == (1, 0, {"401": 1})


def test_a_port_out_of_range_or_a_stats_file_in_a_missing_folder_is_refused_before_serving(tmp_path) -> None:
    missing = tmp_path / "missing" / "stats.json"
    cases = [
        (["--port", "70000"], "Invalid value for '--port'"),
        (["--fault-rate", "2"], "Invalid value for '--fault-rate'"),
        # a negative count or delay was accepted and served (an empty or odd account)
        (["--profiles", "-5"], "Invalid value for '--profiles'"),
        (["--events", "-1"], "Invalid value for '--events'"),
        (["--latency-ms", "-10"], "Invalid value for '--latency-ms'"),
        # served: no events history (0) or one in the future (-5); a scale of 0 or less one
        # request a second on every endpoint, nan dropped every request on a ValueError
        (["--days", "0"], "Invalid value for '--days'"),
        (["--days", "-5"], "Invalid value for '--days'"),
        (["--rate-limit-scale", "0"], "--rate-limit-scale 0.0 must be above 0"),
        (["--rate-limit-scale", "-1"], "--rate-limit-scale -1.0 must be above 0"),
        (["--rate-limit-scale", "nan"], "--rate-limit-scale nan must be above 0"),
        # was found only at shutdown, after the whole run: the stats lost, "unexpected FileNotFoundError"
        (["--port", "0", "--stats-json", str(missing)], f"Error: --stats-json {missing}: the folder"),
    ]
    for args, message in cases:
        try:
            result = refused(*args, timeout=20)
        except subprocess.TimeoutExpired:  # it served instead of refusing
            raise AssertionError(f"{args}: served instead of refusing") from None
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr


def test_the_company_s_timezone_and_currency_are_served_and_bad_ones_refused() -> None:
    # Without these options nobody could see the reports count an account's own days (the
    # sandbox's company was always in UTC) short of writing Python.
    process, printed = serve(
        "--profiles", "5", "--events", "10", "--timezone", "Asia/Kolkata", "--currency", "EUR"
    )
    try:
        url, key = printed["KLAVIYO_BASE_URL"], printed["KLAVIYO_API_KEY"]
        response = httpx.get(
            f"{url}/api/accounts", headers={"Authorization": f"Klaviyo-API-Key {key}", "revision": REVISION}
        )
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    attributes = response.json()["data"][0]["attributes"]
    assert (attributes["timezone"], attributes["preferred_currency"]) == ("Asia/Kolkata", "EUR")
    for args, message in [
        (["--timezone", "Mars/Olympus"], "Error: --timezone 'Mars/Olympus' is not a timezone"),
        (["--timezone", " "], "Error: --timezone is empty"),
        (["--currency", "euro"], "Error: --currency 'euro' is not a currency code"),
    ]:
        result = refused(*args, timeout=20)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr
