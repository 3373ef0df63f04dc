"""`klaviyo-etl report ...` through the real CLI (typer's CliRunner) on real SQLite files."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from typer.testing import CliRunner

from klaviyo_etl.cli import app
from klaviyo_etl.db import open_database

runner = CliRunner()
MAY = ["--from", "2026-05-01", "--to", "2026-05-31"]


def run(path, *args):
    return runner.invoke(app, ["--db", str(path), "report", *args])


def test_campaigns_json_shape_and_numbers(tiny_db_path):
    result = run(tiny_db_path, "campaigns", *MAY, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["report"] == "campaigns" and data["source"] == "events"
    assert data["period"] == {"from": "2026-05-01", "to": "2026-05-31", "label": "2026-05-01..2026-05-31"}
    c1 = next(r for r in data["rows"] if r["campaign_id"] == "C1")
    assert (c1["recipients"], c1["delivered"], c1["opens_unique"], c1["conversion_value"]) == (5, 4, 2, 150.0)
    assert data["totals"]["campaigns"] == 2


def test_campaigns_table_csv_sort_limit_channel(tiny_db_path):
    table = run(tiny_db_path, "campaigns", *MAY)
    assert table.exit_code == 0
    assert "May newsletter" in table.output and "37.50" in table.output
    assert "April newsletter" not in table.output
    result = run(tiny_db_path, "campaigns", *MAY, "--format", "csv", "--sort", "recipients", "--limit", "1")
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [r["campaign_id"] for r in rows] == ["C1"]
    assert rows[0]["open_rate"] == "0.5"
    sms = json.loads(run(tiny_db_path, "campaigns", *MAY, "--channel", "sms", "-f", "json").output)
    assert [r["campaign_id"] for r in sms["rows"]] == ["C2"]


def test_overview_cards_and_json(tiny_db_path):
    result = run(tiny_db_path, "overview", *MAY, "--compare", "previous")
    assert result.exit_code == 0, result.output
    assert "Revenue" in result.output and "240.00" in result.output and "+2300.0%" in result.output
    data = json.loads(run(tiny_db_path, "overview", *MAY, "-f", "json").output)
    assert {r["kpi"]: r["value"] for r in data["rows"]}["active_profiles"] == 6
    assert data["compare"] is None


@pytest.mark.parametrize(
    "args",
    [
        ["flows", "--by", "message"],
        ["forms"],
        ["segments"],
        ["lists"],
        ["rfm"],
        ["rfm", "--by", "profile"],
        ["cohorts"],
        ["metric", "Placed Order", "--forecast", "7d"],
        ["metric", "Opened Email", "--interval", "week", "--measure", "uniques"],
    ],
)
def test_every_report_runs_in_every_format(tiny_db_path, args):
    for fmt in ("table", "json", "csv", "html"):
        result = run(tiny_db_path, *args, *MAY, "--format", fmt)
        assert result.exit_code == 0, (args, fmt, result.output)
        assert result.output.strip()
        if fmt == "json":
            assert json.loads(result.output)["rows"] is not None


def test_output_file(tiny_db_path, tmp_path):
    target = tmp_path / "flows.json"
    result = run(tiny_db_path, "flows", *MAY, "-f", "json", "-o", str(target))
    assert result.exit_code == 0
    rows = json.loads(target.read_text())["rows"]
    assert {(r["name"], r["channel"]) for r in rows} == {("Welcome", "email"), ("Welcome", "sms")}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["campaigns", "-o", "{tmp}"], "--output {tmp} is a folder"),
        (["overview", "-f", "json", "-o", "{tmp}/missing/x.json"], "the folder {tmp}/missing does not exist"),
        (["dashboard", "--html", "{tmp}"], "--html {tmp} is a folder"),
        (["dashboard", "--html", "{tmp}/missing/d.html"], "the folder {tmp}/missing does not exist"),
    ],
)
def test_a_file_to_write_that_cannot_be_one_is_one_line_before_any_work(
    tiny_db_path, tmp_path, args, message
):
    before = tiny_db_path.read_bytes()
    result = run(tiny_db_path, *[arg.replace("{tmp}", str(tmp_path)) for arg in args], *MAY)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith("Error: ")
        and message.replace("{tmp}", str(tmp_path)) in lines[0]
    )
    assert not (tmp_path / "missing").exists()
    assert tiny_db_path.read_bytes() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["campaigns", "--last", "fortnight"], "--last 'fortnight' is not a period"),
        (["campaigns", "--from", "2026-13-01"], "--from '2026-13-01' is not a date"),
        (["campaigns", "--from", "2026-05-10", "--to", "2026-05-01"], "is before --from"),
        (["campaigns", "--last", "7d", "--from", "2026-05-01"], "either --last or --from/--to"),
        (["campaigns", "--sort", "bogus"], "--sort 'bogus' is not a column"),
        (["campaigns", "--channel", "fax"], "--channel 'fax'"),
        (["overview", "--compare", "decade"], "--compare 'decade'"),
        (["campaigns", "--from", "2999-01-01"], "--from 2999-01-01 is in the future (today is"),
        (
            ["dashboard", "--html", "/nonexistent/d.html", "--from", "2999-01-01", "--to", "2999-01-31"],
            "in the future",
        ),
        (["dashboard", "--html", "d.html", "--compare", "decade"], "is not one of previous, year, none"),
        (["overview", "--last", "all", "--compare", "previous"], "needs a bounded period"),
        (["metric", "Placed Ordr"], "did you mean 'Placed Order'"),
        (["metric", "Placed Order", "--forecast", "soon"], "is not a horizon"),
        (["metric", "Placed Order", "--interval", "minute"], "--interval 'minute'"),
        (["overview", "--max-age", "later"], "--max-age 'later' is not a duration"),
        (["campaigns", "--columns", "name,revenue"], "--columns 'revenue' is not a column"),
        (["flows", "--columns", "bogus", "-f", "json"], "--columns 'bogus' is not a column"),
        (
            ["campaigns", "--last", "99999d"],
            "--last '99999d' is too long: at most 9999d or 9999w, or --last all",
        ),
        (["metric", "Placed Order", "--z", "0"], "--z 0.0 must be above 0"),
        (["metric", "Placed Order", "--z", "-3"], "--z -3.0 must be above 0"),
        (["metric", "Placed Order", "--z", "nan"], "--z nan must be above 0"),
        (["campaigns", "--source", "both"], "--source 'both' must be one of events, klaviyo, compare"),
        (
            ["flows", "--source", "both", "--max-age", "1h"],
            "--source 'both' must be one of events, klaviyo, compare",
        ),
    ],
)
def test_usage_errors_are_one_line(tiny_db_path, args, message):
    result = run(tiny_db_path, *args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ["overview"],
        ["campaigns"],
        ["flows"],
        ["forms"],
        ["segments"],
        ["lists"],
        ["rfm"],
        ["cohorts"],
    ],
)
def test_empty_database_gives_a_friendly_line(tmp_path, args):
    open_database(tmp_path / "empty.db").close()  # exists, migrated, nothing synced
    result = run(tmp_path / "empty.db", *args)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert any(word in result.output for word in ("No ", "run `klaviyo-etl sync`"))


def test_unknown_metric_on_empty_database(tmp_path):
    open_database(tmp_path / "empty.db").close()
    result = run(tmp_path / "empty.db", "metric", "Placed Order")
    assert result.exit_code == 2 and "no metrics synced yet" in result.output


def test_dashboard_command_writes_html(tiny_db_path, tmp_path):
    target = tmp_path / "dash.html"
    result = run(tiny_db_path, "dashboard", "--html", str(target), *MAY)
    assert result.exit_code == 0, result.output
    text = target.read_text()
    assert text.startswith("<!DOCTYPE html>") and "240.00" in text and "<svg" in text


def test_dashboard_takes_the_compare_words_as_every_report_does(tiny_db_path, tmp_path):
    # `--compare Previous` is what `report overview` takes; the dashboard refused it.
    pages = {}
    for word in ("previous", "Previous", " YEAR ", "year", "none", "None"):
        target = tmp_path / "dash.html"
        result = run(tiny_db_path, "dashboard", "--html", str(target), *MAY, "--compare", word)
        assert result.exit_code == 0, (word, result.output)
        pages[word] = re.sub(r"generated [\d-]+ [\d:]+ UTC", "", target.read_text())  # the minute
    assert pages["Previous"] == pages["previous"] and pages[" YEAR "] == pages["year"]
    assert pages["None"] == pages["none"] and pages["none"] != pages["previous"]
    blank = run(tiny_db_path, "dashboard", "--html", str(tmp_path / "d.html"), *MAY, "--compare", "")
    assert blank.exit_code == 2
    assert "--compare is empty: give one of previous, year, none" in blank.output


def test_columns_and_wide_shape_the_table_and_leave_json_whole(tiny_db_path):
    picked = run(tiny_db_path, "campaigns", *MAY, "--columns", "name,recipients")
    assert picked.exit_code == 0, picked.output
    header = next(line for line in picked.output.splitlines() if "Recipients" in line)
    assert header.replace("┃", " ").split() == ["Campaign", "Recipients"]
    wide = run(tiny_db_path, "campaigns", *MAY, "--wide")
    assert wide.exit_code == 0 and "Spam" in wide.output and "hidden" not in wide.output
    data = json.loads(run(tiny_db_path, "campaigns", *MAY, "--columns", "name", "-f", "json").output)
    assert "spam_complaints" in data["rows"][0]


def test_metric_leads_with_a_chart_and_the_table_only_with_table(tiny_db_path):
    chart = run(tiny_db_path, "metric", "Placed Order", *MAY, "--forecast", "7d")
    assert chart.exit_code == 0, chart.output
    lines = chart.output.splitlines()
    assert "Placed Order by day (count)" in lines[0] and lines[1].lstrip().startswith("┌")
    assert "Bucket" not in chart.output  # no table
    assert "total " in chart.output and "forecast:" in chart.output  # the summary stays
    both = run(tiny_db_path, "metric", "Placed Order", *MAY, "--forecast", "7d", "--table")
    assert both.exit_code == 0, both.output
    assert both.output.index("┌") < both.output.index("Bucket")  # chart first, then the table
    data = json.loads(run(tiny_db_path, "metric", "Placed Order", *MAY, "-f", "json").output)
    assert "chart" not in json.dumps(data) and len(data["rows"]) == 31
    rows = list(
        csv.DictReader(io.StringIO(run(tiny_db_path, "metric", "Placed Order", *MAY, "-f", "csv").output))
    )
    assert len(rows) == 31 and set(rows[0]) >= {"bucket", "value", "trend", "anomaly"}


@pytest.mark.parametrize(
    "args",
    [
        ["overview"],
        ["campaigns"],
        ["campaigns", "--source", "compare"],
        ["flows"],
        ["forms"],
        ["segments"],
        ["lists"],
        ["metric", "Placed Order"],
        ["rfm"],
        ["cohorts"],
    ],
)
def test_every_report_names_its_conversion_metric(tiny_db_path, tmp_path, args):
    env = {"KLAVIYO_ETL_CONFIG": str(tmp_path / "none.toml")}
    data = json.loads(
        runner.invoke(app, ["--db", str(tiny_db_path), "report", *args, *MAY, "-f", "json"], env=env).output
    )
    assert data["conversion_metric"]["id"] == "mPO" and data["conversion_metric"]["name"] == "Placed Order"
    table = runner.invoke(app, ["--db", str(tiny_db_path), "report", *args, *MAY], env=env)
    assert table.exit_code == 0 and "Conversions: Placed Order (id mPO)" in table.output


def test_a_conversion_metric_setting_that_matches_nothing_is_one_line_exit_2(tiny_db_path, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[reports]\nconversion_metric = "Placed Orders"\n')
    result = runner.invoke(
        app, ["--db", str(tiny_db_path), "report", "campaigns", *MAY], env={"KLAVIYO_ETL_CONFIG": str(config)}
    )
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert (
        len(lines) == 1 and lines[0].startswith("Error: ") and "'Placed Orders' matches no metric" in lines[0]
    )


def test_the_configured_conversion_metric_is_what_the_figures_count(tiny_db_path, tmp_path):
    db = open_database(tiny_db_path)
    db["metrics"].insert(
        {"id": "mPO2", "name": "Placed Order", "integration_name": "API"}, pk="id", alter=True
    )
    db["events"].insert(
        {
            "id": "po2",
            "metric_id": "mPO2",
            "profile_id": "p3",
            "datetime": "2026-05-06T10:00:00+00:00",
            "value": 999.0,
            "attributed_message_id": "M1",
        },
        pk="id",
        alter=True,
    )
    db.close()
    config = tmp_path / "config.toml"
    config.write_text('[reports]\nconversion_metric = "mPO2"\n')
    env = {"KLAVIYO_ETL_CONFIG": str(config)}
    data = json.loads(
        runner.invoke(
            app, ["--db", str(tiny_db_path), "report", "campaigns", *MAY, "-f", "json"], env=env
        ).output
    )
    c1 = next(r for r in data["rows"] if r["campaign_id"] == "C1")
    assert (c1["conversions"], c1["conversion_value"]) == (1, 999.0)
    assert data["conversion_metric"]["integration"] == "API"
    overview = json.loads(
        runner.invoke(
            app, ["--db", str(tiny_db_path), "report", "overview", *MAY, "-f", "json"], env=env
        ).output
    )
    assert {r["kpi"]: r["value"] for r in overview["rows"]}["revenue"] == 999.0
    rfm = json.loads(
        runner.invoke(app, ["--db", str(tiny_db_path), "report", "rfm", *MAY, "-f", "json"], env=env).output
    )
    assert rfm["customers"] == 1  # p3's API order alone, not the Shopify customers


def test_a_report_over_a_first_load_that_did_not_finish_says_so(tiny_db_path):
    # A killed or stopped first load of events: rows up to its watermark, never a success.
    db = open_database(tiny_db_path)
    db["sync_state"].insert({"stream": "events", "watermark": "2026-05-10T00:00:00+00:00", "rows_total": 0})
    db["sync_state"].insert({"stream": "metrics", "last_success_at": "2026-06-01T00:00:00+00:00"})
    db.close()
    result = run(tiny_db_path, "campaigns", *MAY)
    assert result.exit_code == 0, result.output
    assert (
        "note: the first load of events has not finished (read up to 2026-05-10);"
        " run `klaviyo-etl sync` to complete it" in result.stderr
    )
    assert "metrics" not in result.stderr
    assert "May newsletter" in result.stdout  # the report itself as before
    assert "note:" not in run(tiny_db_path, "campaigns", *MAY, "--format", "json").stdout


def test_a_report_after_finished_loads_has_no_note(tiny_db_path):
    db = open_database(tiny_db_path)
    db["sync_state"].insert(
        {"stream": "events", "watermark": "2026-05-10T00:00:00+00:00", "last_success_at": "x"}
    )
    db.close()
    assert "note:" not in run(tiny_db_path, "campaigns", *MAY).stderr


def test_overview_of_one_named_account(tiny_db_path, tmp_path):
    # `report overview --account acme` answered "give one --account", the very thing given.
    config = tmp_path / "accounts.toml"
    config.write_text(f'[accounts.acme]\nkey_env = "KEY_ACME"\ndb = "{tiny_db_path}"\n')
    env = {"KLAVIYO_ETL_CONFIG": str(config)}
    result = runner.invoke(app, ["report", "overview", "--account", "acme", *MAY], env=env)
    assert result.exit_code == 0, result.output
    alone = runner.invoke(app, ["--db", str(tiny_db_path), "report", "overview", *MAY], env=env)
    assert result.output == alone.output  # the cards of that account's database, as without accounts
    data = json.loads(
        runner.invoke(app, ["report", "overview", "--account", "acme", *MAY, "-f", "json"], env=env).output
    )
    assert data["rows"][0]["kpi"] == "revenue" and data["conversion_metric"]["id"] == "mPO"
    both = runner.invoke(app, ["report", "overview", "--all-accounts", *MAY], env=env)
    assert both.exit_code == 0  # all accounts, and there is one
    config.write_text(config.read_text() + f'[accounts.globex]\nkey_env = "KEY_G"\ndb = "{tiny_db_path}"\n')
    two = runner.invoke(app, ["report", "overview", "--all-accounts", *MAY], env=env)
    assert two.exit_code == 2 and "one account's cards" in two.output


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ["campaigns", "--sort", ""],
            "--sort is empty: give a column (choose from campaign_id, status, name",
        ),
        (["flows", "--sort", " "], "--sort is empty: give a column (choose from "),
        (["forms", "--sort", ""], "--sort is empty: give a column (choose from "),
        (["rfm", "--sort", ""], "--sort is empty: give a column (choose from "),
        (["campaigns", "--channel", ""], "--channel is empty: give one of email, sms, mobile_push"),
        (["flows", "--channel", ""], "--channel is empty: give one of email, sms, mobile_push"),
        (["campaigns", "--source", "compare", "--channel", ""], "--channel is empty: give one of email"),
        (["campaigns", "--compare", ""], "--compare is empty: give one of previous, year"),
        (["overview", "--compare", ""], "--compare is empty: give one of previous, year"),
        (["metric", "Placed Order", "--forecast", ""], "--forecast '' is not a horizon"),
        (["campaigns", "--max-age", ""], "--max-age '' is not a duration"),
    ],
)
def test_an_empty_choice_is_a_usage_error_naming_the_choices_not_the_default(tiny_db_path, args, said):
    # `--sort "$SORT"` with SORT unset printed the default order without a word.
    result = runner.invoke(app, ["--db", str(tiny_db_path), "report", *args, *MAY], env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and said in lines[0], result.output


def test_an_option_s_word_is_taken_in_any_case_as_last_and_compare_are(tiny_db_path):
    # `-f JSON`, `--channel Email`, `--interval Day` were refused ("must be one of ..."),
    # while `--last This-Month` and `--compare Previous` were taken.
    result = run(tiny_db_path, "campaigns", *MAY, "-f", "JSON", "--channel", " Email", "--source", "Events")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["report"] == "campaigns"
    for args in (
        ["metric", "Placed Order", *MAY, "--interval", "Day", "--measure", "Value", "--method", "Linear"],
        ["flows", *MAY, "--by", "Message"],
        ["rfm", *MAY, "--by", "PROFILE"],
    ):
        result = run(tiny_db_path, *args)
        assert result.exit_code == 0, (args, result.output)
