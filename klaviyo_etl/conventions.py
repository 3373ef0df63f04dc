"""Klaviyo's metric names and event-property keys, shared by the sandbox and the reports.

Klaviyo's own reporting keys messages, flows and revenue off these names, so both
the data we generate and the figures we compute must agree on them exactly.
"""

# Email
RECEIVED_EMAIL = "Received Email"
OPENED_EMAIL = "Opened Email"
CLICKED_EMAIL = "Clicked Email"
BOUNCED_EMAIL = "Bounced Email"
DROPPED_EMAIL = "Dropped Email"
MARKED_SPAM = "Marked Email as Spam"
UNSUBSCRIBED = "Unsubscribed"
# SMS: Klaviyo renamed its SMS metrics "... Text Message" in July 2026 (LIVE_BEHAVIOUR.md §13);
# `FORMER_NAMES` keeps what they were called before.
SENT_SMS = "Sent Text Message"
RECEIVED_SMS = "Received Text Message"
CLICKED_SMS = "Clicked Text Message"
FAILED_SMS = "Failed to Deliver Text Message"
UNSUBSCRIBED_SMS = "Unsubscribed from Text Messaging Marketing"
# Push
RECEIVED_PUSH = "Received Push"
OPENED_PUSH = "Opened Push"
BOUNCED_PUSH = "Bounced Push"
# Site and commerce
ACTIVE_ON_SITE = "Active on Site"
VIEWED_PRODUCT = "Viewed Product"
ADDED_TO_CART = "Added to Cart"
STARTED_CHECKOUT = "Started Checkout"
PLACED_ORDER = "Placed Order"
ORDERED_PRODUCT = "Ordered Product"
# Lists and forms
SUBSCRIBED_TO_LIST = "Subscribed to List"
UNSUBSCRIBED_FROM_LIST = "Unsubscribed from List"
VIEWED_FORM = "Viewed Form"
SUBMITTED_FORM = "Form submitted by profile"

# Which metric plays which role per channel: (received, opened, clicked, bounced, failed,
# unsubscribed, spam). Klaviyo reports an SMS that could not be delivered as `failed`, apart
# from `bounced` (which SMS does not have); SMS has no opens, so its open rate and
# click-to-open rate are not 0 but not applicable (None).
CHANNEL_METRICS: dict[str, dict[str, str | None]] = {
    "email": {
        "received": RECEIVED_EMAIL,
        "opened": OPENED_EMAIL,
        "clicked": CLICKED_EMAIL,
        "bounced": BOUNCED_EMAIL,
        "failed": None,
        "unsubscribed": UNSUBSCRIBED,
        "spam": MARKED_SPAM,
    },
    "sms": {
        "received": RECEIVED_SMS,
        "opened": None,
        "clicked": CLICKED_SMS,
        "bounced": None,
        "failed": FAILED_SMS,
        "unsubscribed": UNSUBSCRIBED_SMS,
        "spam": None,
    },
    "mobile_push": {
        "received": RECEIVED_PUSH,
        "opened": OPENED_PUSH,
        "clicked": None,
        "bounced": BOUNCED_PUSH,
        "failed": None,
        "unsubscribed": None,
        "spam": None,
    },
}

# Earlier names of a metric, which a database synced before the rename, or an account whose
# older events stay under the metric of the old name, still holds: every report counts a
# metric under any of its names (LIVE_BEHAVIOUR.md §13).
FORMER_NAMES: dict[str, tuple[str, ...]] = {
    SENT_SMS: ("Sent SMS",),
    RECEIVED_SMS: ("Received SMS",),
    CLICKED_SMS: ("Clicked SMS",),
    FAILED_SMS: ("Failed to Deliver SMS",),
    UNSUBSCRIBED_SMS: ("Unsubscribed from SMS Marketing", "Unsubscribed from SMS"),
}


def known_as(name: str) -> tuple[str, ...]:
    """`name` and the names the same metric had before (`FORMER_NAMES`)."""
    return (name, *FORMER_NAMES.get(name, ()))


# Event-property keys (Klaviyo's `$`-prefixed conventions).
# $message: on campaign events the campaign id (live) or the campaign-message id (older data);
# on flow events the flow-message id.
PROP_MESSAGE = "$message"
PROP_FLOW = "$flow"  # flow id on flow message events
PROP_VALUE = "$value"  # revenue on Placed Order
PROP_EVENT_ID = "$event_id"  # the integration's own id (order id)
PROP_ATTRIBUTED_MESSAGE = "$attributed_message"  # message credited with a conversion
PROP_ATTRIBUTED_FLOW = "$attributed_flow"  # flow credited with a conversion (flow messages)
PROP_ATTRIBUTED_CHANNEL = "$attributed_channel"  # email | sms | mobile_push
PROP_FORM_ID = "form_id"  # on Viewed Form / Form submitted by profile
PROP_LIST_ID = "list_id"  # on Subscribed to List / Unsubscribed from List

# Klaviyo's default attribution window for conversions after a message (days).
ATTRIBUTION_WINDOW_DAYS = 5

# How message figures are defined, by the sandbox's Reporting API and by our reports alike
# (per message; a campaign or flow sums its messages):
#   recipients          distinct profiles with a received, bounced or failed event for the message
#   delivered           distinct profiles with a received event
#   opens / opens_unique, clicks / clicks_unique   event count / distinct profiles; a click
#                       whose `Bot Click` is true (a machine's) is not counted, as Klaviyo's
#                       reporting leaves bot clicks out by default (LIVE_BEHAVIOUR.md §12);
#                       on a channel not in `[reports] exclude_bot_clicks` it counts
#   open_rate = opens_unique / delivered;  click_rate = clicks_unique / delivered
#   click_to_open_rate = clicks_unique / opens_unique
#   conversions         Placed Order events whose $attributed_message is the message
#   conversion_uniques  distinct profiles among them; conversion_value = sum of their $value
#   conversion_rate = conversion_uniques / delivered; revenue_per_recipient = conversion_value / delivered
#   unsubscribes / unsubscribe_uniques; unsubscribe_rate = unsubscribe_uniques / delivered
#   bounced             distinct profiles with a bounced event; bounce_rate = bounced / recipients
#   failed              distinct profiles with a failed (SMS) event; failed_rate = failed / recipients
#   spam_complaints     distinct profiles; spam_complaint_rate = spam_complaints / delivered
# A rate whose denominator is zero is 0.0, except open_rate and click_to_open_rate of a
# channel without opens (SMS): None, shown as "n/a".

# Klaviyo's message channels, as campaigns and messages name them (the campaigns endpoint
# requires one in its filter, so the sync scans campaigns once per channel).
CAMPAIGN_CHANNELS = ("email", "sms", "mobile_push")
# The channels whose clicks Klaviyo marks `Bot Click` and whose reporting leaves them out, each
# by its own account setting, on by default (LIVE_BEHAVIOUR.md §12): `[reports]
# exclude_bot_clicks` names those an account keeps on.
BOT_CLICK_CHANNELS = ("email", "sms")

# Campaign statuses that are a send. Every other status (Draft, Scheduled, Preparing to
# schedule, Preparing to send, Adding Recipients, Queued without Recipients, Cancelled, every
# "Cancelled: ...", Unknown) is not: reports do not count it and the Reporting API is never
# asked about it (its 225-a-day budget is for sends).
SENT_STATUSES = ("Sent", "Variations Sent", "Sending", "Sending Segments")

# Reporting API timeframe keys of whole days: the days before the start of today.
TIMEFRAME_DAYS = {"last_7_days": 7, "last_30_days": 30, "last_90_days": 90, "last_365_days": 365}
