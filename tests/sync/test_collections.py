"""What the top-level collection streams send (`params`), without a server."""

from __future__ import annotations

import datetime as dt

import pytest

from klaviyo_etl import conventions as kc
from klaviyo_etl.sync.streams import CampaignStream, ResourceStream, build_streams

STREAMS = build_streams()
MARK = dt.datetime(2026, 5, 1, 10, tzinfo=dt.UTC)


def test_a_first_scan_asks_for_everything_sorted_with_includes():
    lists = STREAMS["lists"]
    assert isinstance(lists, ResourceStream)
    assert lists.params() == {
        "sort": "updated",
        "include": "tags",
        "page[size]": lists.endpoint.page_size_max,
    }


def test_a_later_scan_filters_from_the_mark():
    templates = STREAMS["templates"]
    assert templates.params(mark=MARK) == {
        "filter": "greater-or-equal(updated,2026-05-01T10:00:00Z)",
        "sort": "updated",
        "page[size]": templates.endpoint.page_size_max,
    }


def test_tags_have_no_incremental_field_so_no_filter_and_no_sort():
    assert set(STREAMS["tags"].params()) == {"page[size]"}


@pytest.mark.parametrize("channel", kc.CAMPAIGN_CHANNELS)
def test_campaigns_always_name_their_channel_and_and_it_with_the_mark(channel):
    campaigns = STREAMS["campaigns"]
    assert isinstance(campaigns, CampaignStream)
    assert campaigns.variants[: len(kc.CAMPAIGN_CHANNELS)] == kc.CAMPAIGN_CHANNELS
    first = campaigns.params(channel)
    assert first["filter"] == f'equals(messages.channel,"{channel}")'
    assert first["include"] == "campaign-messages,tags"
    later = campaigns.params(channel, MARK)
    assert later["filter"] == (
        f'and(equals(messages.channel,"{channel}"),greater-or-equal(updated_at,2026-05-01T10:00:00Z))'
    )
    assert later["sort"] == "updated_at"


@pytest.mark.parametrize("channel", kc.CAMPAIGN_CHANNELS)
def test_campaigns_also_scan_the_archived_set_of_each_channel(channel):
    campaigns = STREAMS["campaigns"]
    assert f"{channel}:archived" in campaigns.variants
    first = campaigns.params(f"{channel}:archived")
    assert first["filter"] == f'and(equals(messages.channel,"{channel}"),equals(archived,true))'
    assert first["include"] == "campaign-messages,tags"
    later = campaigns.params(f"{channel}:archived", MARK)
    assert later["filter"] == (
        f'and(equals(messages.channel,"{channel}"),equals(archived,true),'
        "greater-or-equal(updated_at,2026-05-01T10:00:00Z))"
    )
    # The default set stays unfiltered on archived: Klaviyo's default is archived = false.
    assert "archived" not in campaigns.params(channel)["filter"]


def test_flows_also_scan_the_archived_set():
    flows = STREAMS["flows"]
    assert flows.variants == (None, "archived")
    assert "filter" not in flows.params(None)
    assert flows.params("archived")["filter"] == "equals(archived,true)"
    assert flows.params("archived", MARK)["filter"] == (
        "and(equals(archived,true),greater-or-equal(updated,2026-05-01T10:00:00Z))"
    )


def test_an_archived_set_without_a_watermark_of_its_own_is_read_whole():
    # A database synced before the archived scans existed has only the stream's watermark:
    # the archived set must not start from it, or old archived items would never be read.
    for name, variant in (("campaigns", "email:archived"), ("flows", "archived")):
        assert STREAMS[name].first_mark(variant, "2026-05-01T00:00:00+00:00") is None
    assert (
        STREAMS["campaigns"].first_mark("email", "2026-05-01T00:00:00+00:00") == "2026-05-01T00:00:00+00:00"
    )
