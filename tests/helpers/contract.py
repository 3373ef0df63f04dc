"""Recording and replaying the client contract cassettes used by `tests/test_contract.py`.

Three modes, chosen from the environment:

- replay (default): offline. The client points at https://a.klaviyo.com, vcrpy answers
  every request from `cassettes/` and refuses any request it has not recorded.
- record against the sandbox (`KLAVIYO_ETL_RECORD=1`, no key): a sandbox generated from
  a fixed seed and a fixed `now`, so re-recording gives the same cassettes.
- record against a real account (`KLAVIYO_ETL_RECORD=1 KLAVIYO_API_KEY=pk_...`): against
  `KLAVIYO_BASE_URL` (default https://a.klaviyo.com), anchored at the current hour.

Whatever was recorded, the cassettes hold https://a.klaviyo.com as the host, a redacted
Authorization header and no key-like string; `cassettes/recording.yaml` remembers which
source and which `now` the request windows were computed from, so replay asks for exactly
the same requests.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import vcr
import yaml

from klaviyo_etl.client import KlaviyoClient
from klaviyo_etl.endpoints import REVISION
from klaviyo_etl.ratelimit import RateLimiter

CASSETTES = Path(__file__).resolve().parents[2] / "cassettes"
ANCHOR_FILE = CASSETTES / "recording.yaml"
CANONICAL_BASE = "https://a.klaviyo.com"
REDACTED_AUTH = "Klaviyo-API-Key pk_REDACTED"
REPLAY_KEY = "replay-key-not-sent-anywhere"
# Anything shaped like a private key; the redacted placeholder is the only allowed match.
KEY_PATTERN = re.compile(r"pk_[A-Za-z0-9_]+")
# Response headers worth keeping. Dates, cookies and CDN ids are noise; RateLimit-* would make
# the replaying client pause as the live one did, turning an offline replay into a wait.
KEPT_RESPONSE_HEADERS = {"content-type"}
# Request headers a replayed request must repeat exactly (see `_klaviyo_headers`).
PINNED_REQUEST_HEADERS = ("revision", "accept", "authorization")

# Recorded against the sandbox's "tiny" preset (tests/helpers/sandbox.py) anchored here.
SANDBOX_NOW = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)


def recording() -> bool:
    return os.environ.get("KLAVIYO_ETL_RECORD") == "1"


@dataclass
class Target:
    """Where requests go and what instant the request windows hang off."""

    source: str  # "replay-of-sandbox", "sandbox", "klaviyo", "replay-of-klaviyo"
    base_url: str
    api_key: str
    now: dt.datetime
    recording: bool

    @property
    def real_account(self) -> bool:
        """Recorded from a real account: data may legitimately be missing (no SMS campaigns)."""
        return self.source.endswith("klaviyo")


def write_anchor(source: str, now: dt.datetime) -> None:
    CASSETTES.mkdir(parents=True, exist_ok=True)
    text = (
        "# Written by `make cassettes`; the contract tests read it to replay the same requests.\n"
        + yaml.safe_dump({"source": source, "now": now.isoformat(), "revision": REVISION}, sort_keys=False)
    )
    ANCHOR_FILE.write_text(text)


def read_anchor() -> dict[str, Any]:
    if not ANCHOR_FILE.exists():
        raise FileNotFoundError(f"{ANCHOR_FILE} is missing: run `make cassettes` to record the cassettes")
    return yaml.safe_load(ANCHOR_FILE.read_text())


def replay_target() -> Target:
    anchor = read_anchor()
    return Target(
        source=f"replay-of-{anchor['source']}",
        base_url=CANONICAL_BASE,
        api_key=REPLAY_KEY,
        now=dt.datetime.fromisoformat(anchor["now"]),
        recording=False,
    )


def klaviyo_target(api_key: str) -> Target:
    now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    base_url = os.environ.get("KLAVIYO_BASE_URL") or CANONICAL_BASE
    return Target("klaviyo", base_url.rstrip("/"), api_key, now, recording=True)


# -- scrubbing ------------------------------------------------------------------------------


def scrub_text(text: str, target: Target) -> str:
    """Point links at the canonical host and blank anything key-like."""
    if target.base_url != CANONICAL_BASE:
        text = text.replace(target.base_url, CANONICAL_BASE)
    if target.api_key:
        text = text.replace(target.api_key, "pk_REDACTED")
    return KEY_PATTERN.sub("pk_REDACTED", text)


STABLE_ID = "00000000-0000-0000-0000-000000000000"


def stabilize(text: str) -> str:
    """Fix the ids minted per answer (error ids, report ids), so re-recording the same
    requests against the sandbox gives byte-identical cassettes: a diff is a real change."""
    try:
        body = json.loads(text)
    except ValueError:
        return text
    if not isinstance(body, dict):
        return text
    changed = False
    for error in body.get("errors") or []:
        if isinstance(error, dict) and "id" in error:
            error["id"], changed = STABLE_ID, True
    data = body.get("data")
    if isinstance(data, dict) and str(data.get("type", "")).endswith("-report") and "id" in data:
        data["id"], changed = STABLE_ID, True
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False) if changed else text


def _request_filter(target: Target):
    def scrub(request):
        parts = urlsplit(request.uri)
        request.uri = CANONICAL_BASE + parts.path + (f"?{parts.query}" if parts.query else "")
        if "host" in request.headers:
            request.headers["host"] = urlsplit(CANONICAL_BASE).netloc
        body = request.body
        if isinstance(body, bytes) and body:
            request.body = scrub_text(body.decode("utf-8", "replace"), target).encode()
        return request

    return scrub


def _response_filter(target: Target):
    def scrub(response):
        if response["status"]["code"] == 429 or response["status"]["code"] >= 500:
            # A throttled or failed attempt the client retried: keep only the answer it used,
            # so replay sends each request once.
            return None
        headers = response.get("headers") or {}
        response["headers"] = {k: v for k, v in headers.items() if k.lower() in KEPT_RESPONSE_HEADERS}
        body = response["body"].get("string")
        if isinstance(body, bytes):
            text = stabilize(scrub_text(body.decode("utf-8", "replace"), target))
            response["body"]["string"] = text.encode()
        elif isinstance(body, str):
            response["body"]["string"] = stabilize(scrub_text(body, target))
        return response

    return scrub


def _klaviyo_headers(r1, r2) -> None:
    """vcrpy matcher: a replayed request must carry the recorded revision, accept and (redacted)
    Authorization headers, so changing what the client sends breaks the replay."""
    for name in PINNED_REQUEST_HEADERS:
        a, b = r1.headers.get(name), r2.headers.get(name)
        if a != b:
            raise AssertionError(f"header {name}: {a!r} != {b!r}")


def make_vcr(target: Target) -> vcr.VCR:
    recorder = vcr.VCR(
        cassette_library_dir=str(CASSETTES),
        serializer="yaml",
        record_mode="all" if target.recording else "none",
        match_on=["method", "path", "query", "body", "klaviyo_headers"],
        filter_headers=[("authorization", REDACTED_AUTH)],
        before_record_request=_request_filter(target),
        before_record_response=_response_filter(target),
        decode_compressed_response=True,
    )
    recorder.register_matcher("klaviyo_headers", _klaviyo_headers)
    return recorder


# -- the per-test harness ---------------------------------------------------------------------


@dataclass
class Session:
    """One cassette's worth of traffic: the client, and every request it actually sent."""

    target: Target
    replaying: bool
    sent: list[httpx.Request] = field(default_factory=list)
    responses: list[httpx.Response] = field(default_factory=list)
    client: KlaviyoClient | None = None

    def make_client(self) -> KlaviyoClient:
        replaying = self.replaying
        client = KlaviyoClient(
            self.target.api_key,
            base_url=self.target.base_url,
            # Replayed answers cost nothing: no pacing, and a retry could only ask for a
            # request the cassette does not hold.
            limiter=RateLimiter(headroom=100.0) if replaying else None,
            max_attempts=1 if replaying or self.target.source == "sandbox" else 8,
        )

        async def remember(request: httpx.Request) -> None:
            self.sent.append(request)

        async def keep(response: httpx.Response) -> None:
            await response.aread()
            self.responses.append(response)

        client.http.event_hooks["request"].append(remember)
        client.http.event_hooks["response"].append(keep)
        self.client = client
        return client


class Recorder:
    def __init__(self, target: Target):
        self.target = target
        self.vcr = make_vcr(target)

    @contextmanager
    def cassette(self, name: str, *, replay_only: bool = False) -> Iterator[Session]:
        """Replay (or record) `cassettes/<name>.yaml` around the body of a test.

        In replay every recorded interaction must be asked for, so a client that stops
        following `links.next`, or skips a request, fails the test. `replay_only` replays
        a cassette another test records, even while recording."""
        path = CASSETTES / f"{name}.yaml"
        replaying = replay_only or not self.target.recording
        if not replaying and path.exists():
            path.unlink()  # re-record from scratch, never merge with an old recording
        session = Session(self.target, replaying)
        options = {"record_mode": "none"} if replaying else {}
        with self.vcr.use_cassette(path.name, **options) as cassette:
            yield session
        if replaying:
            assert cassette.all_played, (
                f"{path.name}: {cassette.play_count} of {len(cassette)} recorded requests were made"
            )


def cassette_files() -> list[Path]:
    return sorted(CASSETTES.glob("*.yaml"))


def cassette_requests(path: Path) -> list[dict]:
    return (yaml.safe_load(path.read_text()) or {}).get("interactions") or []
