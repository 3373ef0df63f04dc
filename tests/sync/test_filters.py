import datetime as dt

from klaviyo_etl.endpoints import contract
from klaviyo_etl.sync.filters import time_range

UTC = dt.UTC


def test_events_use_inclusive_lower_bound():
    e = contract().by_path("/api/events")
    f = time_range(e, dt.datetime(2026, 1, 1, tzinfo=UTC), dt.datetime(2026, 1, 2, tzinfo=UTC))
    assert (
        f == "and(greater-or-equal(datetime,2026-01-01T00:00:00Z),less-than(datetime,2026-01-02T00:00:00Z))"
    )


def test_profiles_only_accept_greater_than_so_we_step_back_one_second():
    p = contract().by_path("/api/profiles")
    f = time_range(p, dt.datetime(2026, 1, 1, tzinfo=UTC), None)
    assert f == "greater-than(updated,2025-12-31T23:59:59Z)"
