"""The words the console shows for stored values: states, priorities, modes, roles, reply meanings.

A stored value (`pending_approval`, `waiting_route`, `free_text`) is an identifier, not a word:
the console never prints it as it is. `label(value, context)` gives the English word, translated
through the catalogue with the context as `msgctxt` (Spanish needs it: an alert is "cancelada", a
message "cancelado"). A value with no label is shown as it is (a carrier's own status, say).

The contexts are the catalogue's `msgctxt` values; each has an entry per value in
`translations/es/LC_MESSAGES/messages.po`.
"""

from __future__ import annotations

import enum
from typing import Any

from flask_babel import pgettext

ALERT_STATE = "alert state"
DELIVERY_STATE = "delivery state"
PRIORITY = "priority"
MODE = "mode"
ALERT_KIND = "alert kind"
REPLY = "reply"
ROLE = "role"
GROUP_KIND = "group kind"
SENDER_KIND = "sender kind"
OUTCOME = "outcome"
UNMATCHED = "unmatched reason"
HEALTH = "carrier health"
FOLLOWUP = "follow-up"
BIND = "bind state"
BREAKER = "breaker"
CHAIN = "chain problem"
TEMPLATE_STATE = "template state"
REGISTRATION = "registration state"

LABELS: dict[str, dict[str, str]] = {
    ALERT_STATE: {"draft": "draft", "pending_approval": "pending approval", "approved": "approved",
                  "scheduled": "scheduled", "sending": "sending", "completed": "completed", "rejected": "rejected",
                  "cancelled": "cancelled", "superseded": "superseded"},
    DELIVERY_STATE: {"queued": "queued", "submitting": "being submitted", "submitted": "submitted",
                     "delivered": "delivered", "failed": "failed", "expired": "expired",
                     "waiting_route": "waiting for a route", "cancelled": "cancelled", "retrying": "retrying",
                     "next_number": "failed, tried on the next number"},
    PRIORITY: {"flash": "flash", "high": "high", "normal": "normal", "low": "low"},
    MODE: {"live": "LIVE", "exercise": "EXERCISE", "test": "TEST"},
    ALERT_KIND: {"alert": "alert", "correction": "correction", "cancel": "cancellation"},
    REPLY: {"ack": "ACK", "no": "NO", "help": "HELP", "poll": "poll", "stop": "opt-out", "start": "opt-in",
            "verify_yes": "number confirmed", "free_text": "free text", "verified": "number confirmed",
            "no_answer": "no answer", "pending": "pending"},
    ROLE: {"composer": "composer", "approver": "approver", "admin": "admin", "auditor": "auditor"},
    GROUP_KIND: {"static": "static", "dynamic": "dynamic"},
    SENDER_KIND: {"long": "long number", "short": "short code", "shared": "shared short code",
                  "alphanumeric": "alphanumeric"},
    OUTCOME: {"done": "done", "refused": "refused", "failed": "failed"},
    UNMATCHED: {"unmatched_sender": "number not in the directory", "no_open_alert": "no alert open for this number",
                "unknown_keyword": "unknown keyword"},
    FOLLOWUP: {"resend": "re-send", "carrier_retry": "retry through another carrier",
               "supervisor_notice": "notice to supervisors", "help_notice": "HELP notice",
               "optout_confirm": "opt-out confirmation", "optin_confirm": "opt-in confirmation",
               "direct_reply": "answer to one responder", "registration_request": "registration question",
               "registration_answer": "answer to a registration"},
    BIND: {"connecting": "connecting", "up": "up", "down": "down", "stopped": "stopped"},
    BREAKER: {"closed": "closed (traffic flows)", "open": "open (no traffic)", "half_open": "half open (trying)"},
    CHAIN: {"changed_content": "changed", "broken_link": "broken link", "gap": "missing events",
            "reordered": "out of order", "checkpoint_mismatch": "differs from its checkpoint",
            "missing_after_checkpoint": "missing after a checkpoint", "bad_checkpoint": "bad checkpoint line"},
    TEMPLATE_STATE: {"draft": "draft", "pending_approval": "pending approval", "approved": "approved",
                     "rejected": "rejected", "retired": "retired"},
    REGISTRATION: {"pending": "waiting for confirmation", "active": "registered", "expired": "expired",
                   "withdrawn": "withdrawn", "replaced": "replaced by a newer request",
                   "existing": "already a contact", "refused": "refused", "limited": "over the hourly limit"},
    HEALTH: {"ok": "healthy", "degraded": "degraded by its receipts", "silent": "no receipts", "down": "no bind up",
             "unknown": "bind state unknown"},
}

_ENUM_CONTEXTS = {"AlertState": ALERT_STATE, "DeliveryState": DELIVERY_STATE, "Priority": PRIORITY,
                  "AlertMode": MODE, "AlertKind": ALERT_KIND, "ReplyMeaning": REPLY, "Role": ROLE,
                  "GroupKind": GROUP_KIND, "SenderKind": SENDER_KIND, "TemplateState": TEMPLATE_STATE,
                  "RegistrationState": REGISTRATION}


def label(value: Any, context: str | None = None) -> str:
    """The word for a stored value in the operator's language. An enum member names its own
    context; a plain string needs `context`. Unknown values come back as they are."""
    if isinstance(value, enum.Enum):
        context = context or _ENUM_CONTEXTS.get(type(value).__name__)
        value = value.value
    text = str(value if value is not None else "")
    english = LABELS.get(context or "", {}).get(text)
    return pgettext(context, english) if english is not None and context else text


def labels(context: str) -> dict[str, str]:
    """Every value of one context with its word, for the console's scripts (live updates)."""
    return {value: pgettext(context, english) for value, english in LABELS[context].items()}


def value_word(value: str) -> str | None:
    """The word for a value found inside a service's message (`alert is sending, not …`): alert
    states first, then the other contexts; None when it is no known value."""
    for context in (ALERT_STATE, DELIVERY_STATE, PRIORITY, MODE, ALERT_KIND, ROLE, GROUP_KIND, SENDER_KIND):
        english = LABELS[context].get(value)
        if english is not None:
            return pgettext(context, english)
    return None
