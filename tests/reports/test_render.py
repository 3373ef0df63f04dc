"""Rendering reports: CSV cells a spreadsheet would run as formulas are neutralised."""

import csv
import io

from klaviyo_etl.reports.model import Column, Report
from klaviyo_etl.reports.render import to_csv


def test_csv_neutralises_formulas_but_keeps_negative_numbers():
    rows = [
        {"name": '=HYPERLINK("http://x")', "value": -3.5, "count": -2},
        {"name": "+1 555", "value": 0.0, "count": 3},
        {"name": "-cmd|' /C calc'!A0", "value": 1.0, "count": None},
        {"name": "@SUM(A1)", "value": 2.0, "count": 1},
        {"name": "Spring sale", "value": 3.0, "count": 4},
    ]
    report = Report("t", "T", [Column("name", "Name"), Column("value", "Value", "money")], rows)
    read = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert [r["name"] for r in read] == [
        '\'=HYPERLINK("http://x")',
        "'+1 555",
        "'-cmd|' /C calc'!A0",
        "'@SUM(A1)",
        "Spring sale",
    ]
    assert [r["value"] for r in read] == ["-3.5", "0.0", "1.0", "2.0", "3.0"]
    assert [r["count"] for r in read] == ["-2", "3", "", "1", "4"]
