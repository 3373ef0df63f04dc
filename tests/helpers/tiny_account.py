"""A tiny account whose every report figure can be worked out by hand (see tests/reports/test_figures.py).

The `tiny_db` and `tiny_db_path` fixtures in tests/conftest.py build it.

May 2026 in short:
- Campaign C1 (email, sent 05-01 10:00, message M1): p1 received, opened twice (05-01, 05-03)
  and clicked; p2 received and opened 05-02; p3 received, unsubscribed and marked spam;
  p4 bounced; p5 received and opened, but that open was deleted in Klaviyo. Orders credited
  to M1: p1 100.00 (05-02), p2 50.00 (05-04).
- Campaign C2 (sms, sent 05-10 12:00, message M2): p1 received and clicked, p2 failed,
  p6 received; p6 ordered 20.00 credited to M2 (05-11).
- Campaign C3 (email, sent 04-20, M3): p1 and p2 received, p1 opened 04-21.
- Campaign C4 (deleted, sent 05-05, M4): p1 received. C5 is a draft planned for 05-15.
- Flow F1 "Welcome": FM1 (email) p5 received+opened 05-03 and again 05-25, p6 received
  05-21 and ordered 40.00 credited to FM1 (05-22); FM2 (sms) p4 received and clicked 05-22.
- Unattributed orders: p3 10.00 (04-25), p1 30.00 (05-20), p3 15.00 (06-03).
- Form FO1: p1 viewed twice and submitted 05-02, p2 viewed 05-03, p3 viewed 04-15.
- Segment S1: p1 joined 04-01, p2 05-05, p3 05-10 and left 05-20, p4 unknown join date.
  List L1: p1 joined 05-15.
"""

from __future__ import annotations

import itertools

from klaviyo_etl import conventions as kc
from klaviyo_etl.db import open_database

METRICS = {
    "mRE": kc.RECEIVED_EMAIL,
    "mOE": kc.OPENED_EMAIL,
    "mCE": kc.CLICKED_EMAIL,
    "mBE": kc.BOUNCED_EMAIL,
    "mUN": kc.UNSUBSCRIBED,
    "mSP": kc.MARKED_SPAM,
    "mRS": kc.RECEIVED_SMS,
    "mCS": kc.CLICKED_SMS,
    "mFS": kc.FAILED_SMS,
    "mPO": kc.PLACED_ORDER,
    "mVF": kc.VIEWED_FORM,
    "mSF": kc.SUBMITTED_FORM,
    "mAS": kc.ACTIVE_ON_SITE,
}


def at(day: str, time: str = "10:00") -> str:
    return f"2026-{day}T{time}:00+00:00"


def build_tiny_db(path):
    db = open_database(path)
    db["metrics"].insert_all([{"id": k, "name": v} for k, v in METRICS.items()], pk="id")
    db["profiles"].insert_all(
        [
            {"id": "p1", "email": "p1@example.com", "created": at("01-15")},
            {"id": "p2", "email": "p2@example.com", "created": at("01-15")},
            {"id": "p3", "email": "p3@example.com", "created": at("01-15")},
            {"id": "p4", "email": "p4@example.com", "created": at("04-10")},
            {"id": "p5", "email": "p5@example.com", "created": at("05-02")},
            {"id": "p6", "email": "p6@example.com", "created": at("05-20")},
            {"id": "p7", "email": "p7@example.com", "created": at("05-03"), "deleted_at": at("05-30")},
        ],
        pk="id",
    )
    db["campaigns"].insert_all(
        [
            {
                "id": "C1",
                "name": "May newsletter",
                "channel": "email",
                "status": "Sent",
                "send_time": at("05-01"),
            },
            {
                "id": "C2",
                "name": "SMS flash sale",
                "channel": "sms",
                "status": "Sent",
                "send_time": at("05-10", "12:00"),
            },
            {
                "id": "C3",
                "name": "April newsletter",
                "channel": "email",
                "status": "Sent",
                "send_time": at("04-20", "09:00"),
            },
            {
                "id": "C4",
                "name": "Deleted campaign",
                "channel": "email",
                "status": "Sent",
                "send_time": at("05-05"),
                "deleted_at": at("05-30"),
            },
            {
                "id": "C5",
                "name": "Draft idea",
                "channel": "email",
                "status": "Draft",
                "send_time": at("05-15"),
            },
        ],
        pk="id",
    )
    db["campaign_messages"].insert_all(
        [
            {"id": "M1", "campaign_id": "C1", "channel": "email"},
            {"id": "M2", "campaign_id": "C2", "channel": "sms"},
            {"id": "M3", "campaign_id": "C3", "channel": "email"},
            {"id": "M4", "campaign_id": "C4", "channel": "email"},
        ],
        pk="id",
    )
    db["flows"].insert_all([{"id": "F1", "name": "Welcome", "status": "live"}], pk="id")
    db["flow_messages"].insert_all(
        [
            {"id": "FM1", "flow_id": "F1", "name": "Welcome email", "channel": "email"},
            {"id": "FM2", "flow_id": "F1", "name": "Welcome text", "channel": "sms"},
        ],
        pk="id",
    )
    db["forms"].insert_all(
        [
            {"id": "FO1", "name": "Newsletter popup", "status": "live"},
            {"id": "FO2", "name": "Footer form", "status": "draft"},
        ],
        pk="id",
    )
    counter = itertools.count(1)

    def ev(metric, profile, when, **extra):
        return {
            "id": f"e{next(counter)}",
            "metric_id": metric,
            "profile_id": profile,
            "datetime": when,
            **extra,
        }

    m1, m2 = {"message_id": "M1"}, {"message_id": "M2"}
    fm1 = {"message_id": "FM1", "flow_id": "F1"}
    fm2 = {"message_id": "FM2", "flow_id": "F1"}
    events = [
        ev("mRE", "p1", at("05-01"), **m1),
        ev("mOE", "p1", at("05-01", "11:00"), **m1),
        ev("mOE", "p1", at("05-03", "09:00"), **m1),
        ev("mCE", "p1", at("05-01", "11:05"), **m1),
        ev("mRE", "p2", at("05-01"), **m1),
        ev("mOE", "p2", at("05-02", "08:00"), **m1),
        ev("mRE", "p3", at("05-01"), **m1),
        ev("mUN", "p3", at("05-01", "12:00"), **m1),
        ev("mSP", "p3", at("05-01", "12:01"), **m1),
        ev("mBE", "p4", at("05-01"), **m1),
        ev("mRE", "p5", at("05-01"), **m1),
        ev("mOE", "p5", at("05-01", "13:00"), deleted_at=at("05-15"), **m1),
        ev("mPO", "p1", at("05-02"), value=100.0, attributed_message_id="M1"),
        ev("mPO", "p2", at("05-04"), value=50.0, attributed_message_id="M1"),
        ev("mRS", "p1", at("05-10", "12:00"), **m2),
        ev("mCS", "p1", at("05-10", "12:30"), **m2),
        ev("mFS", "p2", at("05-10", "12:00"), **m2),
        ev("mRS", "p6", at("05-10", "12:00"), **m2),
        ev("mPO", "p6", at("05-11"), value=20.0, attributed_message_id="M2"),
        ev("mRE", "p1", at("04-20", "09:00"), message_id="M3"),
        ev("mRE", "p2", at("04-20", "09:00"), message_id="M3"),
        ev("mOE", "p1", at("04-21"), message_id="M3"),
        ev("mRE", "p1", at("05-05"), message_id="M4"),
        ev("mRE", "p5", at("05-03"), **fm1),
        ev("mOE", "p5", at("05-03", "10:30"), **fm1),
        ev("mRE", "p5", at("05-25"), **fm1),
        ev("mOE", "p5", at("05-25", "10:30"), **fm1),
        ev("mRE", "p6", at("05-21"), **fm1),
        ev("mPO", "p6", at("05-22"), value=40.0, attributed_message_id="FM1", attributed_flow_id="F1"),
        ev("mRS", "p4", at("05-22"), **fm2),
        ev("mCS", "p4", at("05-22", "10:05"), **fm2),
        ev("mPO", "p3", at("04-25"), value=10.0),
        ev("mPO", "p1", at("05-20"), value=30.0),
        ev("mPO", "p3", at("06-03"), value=15.0),
        ev("mVF", "p1", at("05-02"), form_id="FO1"),
        ev("mVF", "p1", at("05-02", "10:01"), form_id="FO1"),
        ev("mSF", "p1", at("05-02", "10:02"), form_id="FO1"),
        ev("mVF", "p2", at("05-03"), form_id="FO1"),
        ev("mVF", "p3", at("04-15"), form_id="FO1"),
    ]
    db["events"].insert_all(events, pk="id", alter=True)
    db["segments"].insert_all([{"id": "S1", "name": "Engaged"}], pk="id")
    db["segment_members"].insert_all(
        [
            {"segment_id": "S1", "profile_id": "p1", "joined_group_at": at("04-01")},
            {"segment_id": "S1", "profile_id": "p2", "joined_group_at": at("05-05")},
            {
                "segment_id": "S1",
                "profile_id": "p3",
                "joined_group_at": at("05-10"),
                "deleted_at": at("05-20"),
            },
            {"segment_id": "S1", "profile_id": "p4"},
        ]
    )
    db["lists"].insert_all([{"id": "L1", "name": "Newsletter"}], pk="id")
    db["list_members"].insert_all([{"list_id": "L1", "profile_id": "p1", "joined_group_at": at("05-15")}])
    return db
