"""The data model. Importing this package registers every table on `Base.metadata`."""

from alerting.base.models.alerts import (
    Alert,
    AlertApproval,
    AlertAuthor,
    AlertCounter,
    AlertKind,
    AlertMode,
    AlertState,
    Priority,
)
from alerting.base.models.directory import (
    Contact,
    ContactImport,
    ContactLocation,
    ContactNumber,
    Group,
    GroupKind,
    GroupMember,
)
from alerting.base.models.messages import Delivery, DeliveryState, InboundKind, InboundMessage, Reply, ReplyMeaning
from alerting.base.models.operators import ApiToken, Operator, Role, WebSession
from alerting.base.models.senders import CarrierHealthRow, Sender, SenderKind, SenderUsage
from alerting.base.models.zones import Zone, ZoneCell, ZonePart

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
    "ContactNumber",
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
    "WebSession",
    "Zone",
    "ZoneCell",
    "ZonePart",
]
