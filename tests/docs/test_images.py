"""The README's report example is printed as a terminal of the stated width shows it."""

from __future__ import annotations

from klaviyo_etl.docs.images import WIDTH, campaigns_text


def test_the_campaigns_example_is_a_fenced_terminal_capture(tiny_db_path):
    text = campaigns_text(tiny_db_path)
    lines = text.splitlines()
    assert lines[0] == "```text" and lines[-1] == "```"
    assert lines[1] == "$ klaviyo-etl report campaigns --last 90d --limit 10"
    assert lines[2].startswith("Campaigns")
    assert all(len(line) <= WIDTH for line in lines)
