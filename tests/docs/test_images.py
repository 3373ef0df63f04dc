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


def test_the_campaigns_example_shows_each_campaign_by_name_with_its_figures(tiny_db_path):
    text = campaigns_text(tiny_db_path, last="all")
    lines = text.splitlines()
    assert lines[1] == "$ klaviyo-etl report campaigns --last all --limit 10"
    assert all(len(line) <= WIDTH for line in lines)
    header = next(line for line in lines if line.startswith("Campaign "))
    assert "Recip" in header and "Revenue" in header
    for name, figure in (("May newsletter", "150.00"), ("SMS flash sale", "20.00")):
        row = next(line for line in lines if line.startswith(name))
        assert figure in row
    assert "┃┃" not in text and "││" not in text  # no column squeezed to nothing
