"""Which metric counts as a conversion: the setting, or the busiest "Placed Order", deterministically."""

from __future__ import annotations

import pytest

from klaviyo_etl import conventions as kc
from klaviyo_etl.db import open_database
from klaviyo_etl.db.conversion import conversion_metric
from klaviyo_etl.db.rollups import ensure_rollups, needs_rebuild
from klaviyo_etl.errors import ConfigError


@pytest.fixture
def db(tmp_path):
    database = open_database(tmp_path / "c.db")
    yield database
    database.close()


def metric(db, mid, name=kc.PLACED_ORDER, integration=None, created=None, events=0):
    db["metrics"].insert(
        {"id": mid, "name": name, "integration_name": integration, "created": created}, pk="id", alter=True
    )
    db["events"].insert_all(
        [
            {"id": f"{mid}-{n}", "metric_id": mid, "datetime": "2026-05-01T10:00:00+00:00"}
            for n in range(events)
        ],
        pk="id",
        alter=True,
    )


def test_nothing_synced_means_no_conversion_metric(db):
    assert conversion_metric(db) is None
    assert conversion_metric(db, "Placed Order") is None  # no metric at all: not a typo yet


def test_the_only_placed_order_is_the_one(db):
    metric(db, "SHOP", integration="Shopify", events=1)
    metric(db, "VIEW", name=kc.VIEWED_PRODUCT, events=10)
    picked = conversion_metric(db)
    assert (picked.id, picked.name, picked.integration) == ("SHOP", kc.PLACED_ORDER, "Shopify")
    assert picked.caption() == "Conversions: Placed Order (Shopify, id SHOP)"


def test_the_placed_order_with_most_events_wins_and_says_why(db):
    metric(db, "API", integration="API", created="2020-01-01", events=2)
    metric(db, "SHOP", integration="Shopify", created="2024-01-01", events=5)
    picked = conversion_metric(db)
    assert picked.id == "SHOP"
    assert "most events (5) of 2 'Placed Order' metrics" in picked.reason and "API API (2)" in picked.reason


def test_a_tie_goes_to_the_earliest_created_then_the_smallest_id(db):
    metric(db, "B", integration="API", created="2024-01-01", events=3)
    metric(db, "C", integration="Woo", created="2023-01-01", events=3)
    metric(db, "A", integration="Shopify", created="2024-01-01", events=3)
    assert conversion_metric(db).id == "C"
    db.execute("UPDATE metrics SET created = '2024-01-01'")
    picked = conversion_metric(db)
    assert picked.id == "A" and "tie" in picked.reason


def test_the_setting_picks_by_id_or_by_name(db):
    metric(db, "SHOP", integration="Shopify", events=5)
    metric(db, "API", integration="API", events=2)
    metric(db, "CUSTOM", name="Order Completed", events=1)
    assert conversion_metric(db, "API").id == "API"
    assert conversion_metric(db, "Order Completed").id == "CUSTOM"
    assert conversion_metric(db, "Placed Order").id == "SHOP"
    assert conversion_metric(db, "API").reason.startswith("configured")


def test_a_setting_matching_no_metric_is_a_config_error(db):
    metric(db, "SHOP", integration="Shopify", events=1)
    with pytest.raises(ConfigError, match="conversion_metric 'Placed Orders' matches no metric"):
        conversion_metric(db, "Placed Orders")
    with pytest.raises(ConfigError):
        ensure_rollups(db, conversion="Placed Orders")


def test_changing_the_conversion_metric_rebuilds_the_rollups(db):
    metric(db, "SHOP", integration="Shopify", events=5)
    metric(db, "API", integration="API", events=2)
    ensure_rollups(db)
    assert not needs_rebuild(db)
    assert needs_rebuild(db, "API")
    assert ensure_rollups(db, conversion="API").mode == "full"
    assert not needs_rebuild(db, "API")


def _counting(db) -> list[str]:
    seen: list[str] = []
    db.conn.set_trace_callback(lambda sql: seen.append(sql) if "count(*)" in sql else None)
    return seen


def test_a_report_asking_again_does_not_count_the_events_again(db):
    metric(db, "A", events=3)
    metric(db, "B", events=2)
    counts = _counting(db)
    first = conversion_metric(db)
    asked = len(counts)
    assert first.id == "A" and asked == 2  # one count per "Placed Order" metric
    assert conversion_metric(db) is first and conversion_metric(db, None) is first
    assert len(counts) == asked
    assert conversion_metric(db, "B").id == "B"  # another setting: picked anew


def test_new_events_make_the_pick_again(db, tmp_path):
    metric(db, "A", events=3)
    metric(db, "B", events=2)
    assert conversion_metric(db).id == "A"
    db["events"].insert_all([{"id": f"B-x{n}", "metric_id": "B"} for n in range(2)], pk="id")
    assert conversion_metric(db).id == "B"  # this connection's own writes
    other = open_database(tmp_path / "c.db")
    other["events"].insert_all([{"id": f"A-x{n}", "metric_id": "A"} for n in range(3)], pk="id")
    other.close()
    assert conversion_metric(db).id == "A"  # another connection's commit
