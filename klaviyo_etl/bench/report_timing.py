"""Timing the reports on a big database, and building one quickly to time them on.

`build_bench_db(path, n_events)` writes a realistic account straight into the public tables
with executemany (no API, no sandbox server): a year of email and SMS campaigns sent to
tens of thousands of profiles with opens, clicks, bounces, unsubscribes, spam complaints
and attributed orders; always-on flows; site browsing, carts and orders; form views and
submissions; lists and segments. Events are written in time order, as a sync writes them.

`bench_reports(db_path)` times the rollup refresh and then `report campaigns` and
`report overview` (cold first run and the median of warm runs).

    python -m klaviyo_etl.bench.report_timing --build 3000000 /tmp/bench.db
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from klaviyo_etl import conventions as kc
from klaviyo_etl.db import open_database
from klaviyo_etl.db.rollups import ensure_rollups
from klaviyo_etl.reports import messages, overview, periods

_ALNUM = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _short(rng: random.Random, n: int = 6) -> str:
    return "".join(rng.choice(_ALNUM) for _ in range(n))


def _ulid(rng: random.Random) -> str:
    return "01" + "".join(rng.choice(_CROCKFORD) for _ in range(24))


def _iso(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()


def build_bench_db(
    path: str | Path, n_events: int, *, seed: int = 1, days: int = 365, now: dt.datetime | None = None
) -> dict:
    """Write about `n_events` events (and the profiles, campaigns, flows, forms, lists and
    segments they refer to) into a fresh database at `path`; return what was written."""
    path = Path(path)
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    rng = random.Random(seed)
    now = now or dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    end_ts = int(now.timestamp())
    start_ts = end_ts - days * 86400
    db = open_database(path)
    conn = db.conn
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -400000")
    synced = now.isoformat()

    metric_names = sorted(
        {*_MESSAGE_METRICS, *_SITE_METRICS, kc.VIEWED_FORM, kc.SUBMITTED_FORM, kc.SUBSCRIBED_TO_LIST}
    )
    metric = {name: _short(rng) for name in metric_names}
    n_profiles = max(200, n_events // 50)
    profiles = [_ulid(rng) for _ in range(n_profiles)]
    profile_created = [start_ts - 200 * 86400 + int(rng.random() * 565 * 86400) for _ in range(n_profiles)]

    # Budget: ~62% campaign message events, ~14% flow events, the rest site and forms.
    per_recipient = 1.75  # received/bounced + opens + clicks + unsubs + orders, on average
    n_campaigns = max(4, days * 3 // 7)
    audience = max(20, int(n_events * 0.62 / per_recipient / n_campaigns))
    audience = min(audience, n_profiles)
    campaigns, messages = [], []
    buckets: dict[int, list[tuple]] = {}

    def emit(
        ts: int,
        metric_name: str,
        profile: int,
        message: str | None = None,
        flow: str | None = None,
        value: float | None = None,
        attributed: tuple[str, str | None] | None = None,
        form: str | None = None,
    ):
        if ts >= end_ts:
            return
        buckets.setdefault((ts - start_ts) // 86400, []).append(
            (ts, metric[metric_name], profile, message, flow, value, attributed, form)
        )

    def engagement(ts: int, profile: int, message: str, channel: str, flow: str | None):
        roles = kc.CHANNEL_METRICS[channel]
        if rng.random() < 0.03:
            emit(ts, roles["bounced"] or roles["failed"], profile, message, flow)
            return
        emit(ts, roles["received"], profile, message, flow)
        opened = roles["opened"] and rng.random() < 0.38
        if opened:
            t = ts + int(rng.expovariate(1 / 20000))
            for _ in range(1 + (rng.random() < 0.3)):
                emit(t, roles["opened"], profile, message, flow)
                t += int(rng.expovariate(1 / 90000))
        if roles["clicked"] and (opened or channel == "sms") and rng.random() < 0.18:
            t = ts + int(rng.expovariate(1 / 30000))
            emit(t, roles["clicked"], profile, message, flow)
            if rng.random() < 0.12:
                value = round(rng.uniform(15, 260), 2)
                emit(
                    t + rng.randrange(60, 86400 * 4),
                    kc.PLACED_ORDER,
                    profile,
                    value=value,
                    attributed=(message, flow),
                )
        if roles["unsubscribed"] and rng.random() < 0.003:
            emit(ts + rng.randrange(60, 86400), roles["unsubscribed"], profile, message, flow)
        if roles["spam"] and rng.random() < 0.0004:
            emit(ts + rng.randrange(60, 86400), roles["spam"], profile, message, flow)

    for i in range(n_campaigns):
        channel = "sms" if i % 5 == 4 else "email"
        send_ts = start_ts + int((i + 0.5) * (days * 86400) / n_campaigns)
        campaign_id, message_id = _ulid(rng), _ulid(rng)
        campaigns.append((campaign_id, f"Campaign {i + 1}", channel, "Sent", 0, _iso(send_ts)))
        messages.append((message_id, campaign_id, channel, f"Subject {i + 1}", _iso(send_ts)))
        for profile in rng.sample(range(n_profiles), audience):
            engagement(send_ts + rng.randrange(0, 1800), profile, message_id, channel, None)

    flows, flow_messages = [], []
    for name in ("Welcome Series", "Abandoned Cart", "Browse Abandonment", "Post Purchase", "Win-back"):
        flow_id = _short(rng)
        steps = [(_short(rng), "email" if k < 2 else "sms") for k in range(3)]
        flows.append((flow_id, name))
        flow_messages.extend((mid, flow_id, f"{name} #{k + 1}", ch) for k, (mid, ch) in enumerate(steps))
        entries = int(n_events * 0.14 / per_recipient / 5 / 2.4)
        for _ in range(entries):
            ts = start_ts + rng.randrange(days * 86400)
            profile = rng.randrange(n_profiles)
            for k, (mid, ch) in enumerate(steps):
                if k and rng.random() < 0.3:
                    break
                engagement(ts + k * 86400 * 2, profile, mid, ch, flow_id)

    forms = [(_short(rng), f"Signup form {k + 1}") for k in range(4)]
    remaining = n_events - sum(len(b) for b in buckets.values())
    site_events = max(0, remaining)
    # Each visit below averages 3.125 events (2 + 0.45 * 1.2 + 0.45 * 1.3).
    for _ in range(int(site_events / 3.125)):
        ts = start_ts + rng.randrange(days * 86400)
        profile = rng.randrange(n_profiles)
        emit(ts, kc.ACTIVE_ON_SITE, profile)
        emit(ts + 30, kc.VIEWED_PRODUCT, profile, value=round(rng.uniform(15, 150), 2))
        r = rng.random()
        if r < 0.45:
            form_id = forms[rng.randrange(len(forms))][0]
            emit(ts + 40, kc.VIEWED_FORM, profile, form=form_id)
            if rng.random() < 0.2:
                emit(ts + 90, kc.SUBMITTED_FORM, profile, form=form_id)
        elif r < 0.9:
            emit(ts + 60, kc.ADDED_TO_CART, profile, value=round(rng.uniform(15, 150), 2))
            if rng.random() < 0.3:
                emit(ts + 300, kc.PLACED_ORDER, profile, value=round(rng.uniform(15, 300), 2))

    conn.execute("BEGIN")
    if True:  # one transaction: the connection autocommits otherwise
        conn.executemany(
            "INSERT INTO metrics (id, name, integration_name, synced_at) VALUES (?, ?, ?, ?)",
            [
                (mid, name, "Klaviyo" if name != kc.PLACED_ORDER else "API", synced)
                for name, mid in metric.items()
            ],
        )
        conn.executemany(
            "INSERT INTO profiles (id, email, created, updated, synced_at) VALUES (?, ?, ?, ?, ?)",
            [
                (pid, f"p{i}@example.com", _iso(profile_created[i]), _iso(profile_created[i]), synced)
                for i, pid in enumerate(profiles)
            ],
        )
        conn.executemany(
            "INSERT INTO campaigns (id, name, channel, status, archived, send_time, synced_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(*c, synced) for c in campaigns],
        )
        conn.executemany(
            "INSERT INTO campaign_messages (id, campaign_id, channel, subject, send_time, synced_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(*m, synced) for m in messages],
        )
        conn.executemany(
            "INSERT INTO flows (id, name, status, synced_at) VALUES (?, ?, 'live', ?)",
            [(*f, synced) for f in flows],
        )
        conn.executemany(
            "INSERT INTO flow_messages (id, flow_id, name, channel, synced_at) VALUES (?, ?, ?, ?, ?)",
            [(*m, synced) for m in flow_messages],
        )
        conn.executemany(
            "INSERT INTO forms (id, name, status, synced_at) VALUES (?, ?, 'live', ?)",
            [(*f, synced) for f in forms],
        )
        for kind, table, member_table in (
            ("list", "lists", "list_members"),
            ("segment", "segments", "segment_members"),
        ):
            for k in range(3):
                group_id = _short(rng)
                conn.execute(
                    f"INSERT INTO {table} (id, name, synced_at) VALUES (?, ?, ?)",
                    [group_id, f"{kind.title()} {k + 1}", synced],
                )
                members = rng.sample(range(n_profiles), n_profiles // (k + 2))
                conn.executemany(
                    f"INSERT INTO {member_table} ({kind}_id, profile_id, joined_group_at,"
                    " synced_at) VALUES (?, ?, ?, ?)",
                    [
                        (
                            group_id,
                            profiles[p],
                            _iso(max(profile_created[p], start_ts) + rng.randrange(86400 * 30)),
                            synced,
                        )
                        for p in members
                    ],
                )
    conn.execute("COMMIT")

    written = 0
    event_sql = (
        "INSERT INTO events (id, metric_id, profile_id, datetime, timestamp, uuid, value,"
        " message_id, flow_id, attributed_message_id, attributed_flow_id, form_id, attributes,"
        " synced_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    rows: list[tuple] = []
    clicks = {metric[kc.CLICKED_EMAIL], metric[kc.CLICKED_SMS]}
    for day in sorted(buckets):
        for ts, metric_id, profile, message, flow, value, attributed, form in sorted(
            buckets.pop(day), key=lambda r: r[0]
        ):
            written += 1
            event_id = format(rng.getrandbits(60), "015x")
            props = {}
            if message:
                props[kc.PROP_MESSAGE] = message
            if flow:
                props[kc.PROP_FLOW] = flow
            if value is not None:
                props[kc.PROP_VALUE] = value
            if attributed:
                props[kc.PROP_ATTRIBUTED_MESSAGE] = attributed[0]
            if form:
                props[kc.PROP_FORM_ID] = form
            if metric_id in clicks:  # every fourth click a bot's (LIVE_BEHAVIOUR.md §12)
                props["Bot Click"] = written % 4 == 0
            when = _iso(ts)
            attributes = json.dumps(
                {"timestamp": ts, "datetime": when, "uuid": event_id, "event_properties": props},
                separators=(",", ":"),
            )
            rows.append(
                (
                    event_id,
                    metric_id,
                    profiles[profile],
                    when,
                    ts,
                    event_id,
                    value,
                    message,
                    flow,
                    attributed[0] if attributed else None,
                    attributed[1] if attributed else None,
                    form,
                    attributes,
                    synced,
                )
            )
        if len(rows) >= 250_000 or not buckets:
            conn.execute("BEGIN")
            conn.executemany(event_sql, rows)
            conn.execute("COMMIT")
            rows = []
    conn.execute("PRAGMA synchronous = NORMAL")
    db.close()
    return {
        "events": written,
        "profiles": n_profiles,
        "campaigns": len(campaigns),
        "flows": len(flows),
        "days": days,
    }


_MESSAGE_METRICS = [n for roles in kc.CHANNEL_METRICS.values() for n in roles.values() if n]
_SITE_METRICS = [kc.ACTIVE_ON_SITE, kc.VIEWED_PRODUCT, kc.ADDED_TO_CART, kc.PLACED_ORDER]


def _time(fn, repeat: int) -> dict:
    started = time.perf_counter()
    fn()
    cold = time.perf_counter() - started
    warm = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        warm.append(time.perf_counter() - started)
    return {
        "cold_s": round(cold, 4),
        "warm_median_s": round(statistics.median(warm), 4),
        "warm_max_s": round(max(warm), 4),
    }


def bench_reports(db_path: str | Path, *, repeat: int = 5) -> dict:
    """Time the rollup refresh, then `report campaigns` and `report overview` (default
    period, previous-period comparison) on the database at `db_path`."""
    db = open_database(db_path)
    events = db.execute("SELECT count(*) FROM events").fetchone()[0]
    refresh = ensure_rollups(db)
    today = periods.utc_today()
    period = periods.resolve_period(last="30d", today=today)
    compare = periods.compare_period(period, "previous")
    year = periods.resolve_period(last="this-year", today=today)
    result = {
        "events": events,
        "rollup_refresh": {"mode": refresh.mode, "seconds": refresh.seconds},
        "campaigns_30d": _time(lambda: messages.campaign_report(db, period), repeat),
        "campaigns_all": _time(
            lambda: messages.campaign_report(db, periods.resolve_period(last="all")), repeat
        ),
        "overview_30d": _time(lambda: overview.overview_report(db, period, compare), repeat),
        "overview_year": _time(
            lambda: overview.overview_report(db, year, periods.compare_period(year, "year")), repeat
        ),
    }
    db.close()
    return result


def bench_reports_on(n_events: int, path: Path | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        db = path or Path(tmp) / "reports.db"
        built = {}
        if not db.exists():
            started = time.perf_counter()
            built = build_bench_db(db, n_events)
            built["build_s"] = round(time.perf_counter() - started, 1)
        return {"built": built, **bench_reports(db)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("db", help="database file")
    parser.add_argument("--build", type=int, metavar="N", help="first build it with N events")
    args = parser.parse_args(argv)
    if args.build:
        started = time.perf_counter()
        info = build_bench_db(args.db, args.build)
        info["build_s"] = round(time.perf_counter() - started, 1)
        print(json.dumps({"built": info}))
    print(json.dumps(bench_reports(args.db), indent=2))


if __name__ == "__main__":
    main()
