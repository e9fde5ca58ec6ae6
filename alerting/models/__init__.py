"""The data model. Importing this package registers every table on `Base.metadata`."""

from alerting.models.alerts import (
    Alert,
    AlertApproval,
    AlertAuthor,
    AlertCounter,
    AlertKind,
    AlertMode,
    AlertState,
    Priority,
)
from alerting.models.directory import Contact, ContactImport, ContactLocation, Group, GroupKind, GroupMember
from alerting.models.messages import Delivery, DeliveryState, InboundKind, InboundMessage, Reply, ReplyMeaning
from alerting.models.operators import ApiToken, Operator, Role
from alerting.models.senders import CarrierHealthRow, Sender, SenderKind, SenderUsage
from geo.models import Zone

__all__ = [
    "Alert",
    "AlertApproval",
    "AlertAuthor",
    "AlertCounter",
    "AlertKind",
    "AlertMode",
    "AlertState",
    "ApiToken",
    "CarrierHealthRow",
    "Contact",
    "ContactImport",
    "ContactLocation",
    "Delivery",
    "DeliveryState",
    "Group",
    "GroupKind",
    "GroupMember",
    "InboundKind",
    "InboundMessage",
    "Operator",
    "Priority",
    "Reply",
    "ReplyMeaning",
    "Role",
    "Sender",
    "SenderKind",
    "SenderUsage",
    "Zone",
]
