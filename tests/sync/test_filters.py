import datetime as dt

from klaviyo_etl.endpoints import contract
from klaviyo_etl.sync.filters import fmt_time, time_range

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


def test_filter_times_write_the_year_in_four_digits():
    # strftime's %Y wrote "999-06-01T00:00:00Z", which the sandbox refused with a 400
    assert fmt_time(dt.datetime(999, 6, 1, tzinfo=dt.UTC)) == "0999-06-01T00:00:00Z"
    moment = dt.datetime(2026, 5, 1, 12, 30, 15, 999999, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert fmt_time(moment) == "2026-05-01T10:30:15Z"
