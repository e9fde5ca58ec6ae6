"""The data model. Importing this package registers every table on `Base.metadata`."""

from alerting.base.models.alerts import (
    Alert,
    AlertApproval,
    AlertAuthor,
    AlertCounter,
    AlertKind,
    AlertMode,
    AlertState,
    PrearmedTexts,
    Priority,
)
from alerting.base.models.areas import OperatorArea
from alerting.base.models.audit_events import AuditEvent
from alerting.base.models.directory import (
    Contact,
    ContactImport,
    ContactLocation,
    ContactNumber,
    Group,
    GroupKind,
    GroupMember,
)
from alerting.base.models.incidents import Incident
from alerting.base.models.intake import (
    CapMessage,
    IdempotencyRecord,
    IntakeMessage,
    IntakeSender,
    Schedule,
    ScheduleRun,
    WebhookCursor,
    WebhookDelivery,
    WebhookSubscriber,
)
from alerting.base.models.messages import Delivery, DeliveryState, InboundKind, InboundMessage, Reply, ReplyMeaning
from alerting.base.models.operators import ApiToken, Operator, Role, WebSession
from alerting.base.models.pipeline import Escalation, FanoutChunk, Followup, MessagePart, Receipt
from alerting.base.models.registration import (
    Registration,
    RegistrationKeyword,
    RegistrationPolicy,
    RegistrationState,
    ZoneSubscription,
)
from alerting.base.models.senders import Carrier, CarrierHealthRow, Sender, SenderKind, SenderUsage
from alerting.base.models.templates import (
    MessageTemplate,
    TemplateApproval,
    TemplateAuthor,
    TemplateState,
    TemplateVersion,
)
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
    "AuditEvent",
    "CapMessage",
    "Carrier",
    "CarrierHealthRow",
    "Contact",
    "ContactImport",
    "ContactLocation",
    "ContactNumber",
    "Delivery",
    "DeliveryState",
    "Escalation",
    "FanoutChunk",
    "Followup",
    "Group",
    "GroupKind",
    "GroupMember",
    "IdempotencyRecord",
    "InboundKind",
    "InboundMessage",
    "Incident",
    "IntakeMessage",
    "IntakeSender",
    "MessagePart",
    "MessageTemplate",
    "Operator",
    "OperatorArea",
    "PrearmedTexts",
    "Priority",
    "Receipt",
    "Registration",
    "RegistrationKeyword",
    "RegistrationPolicy",
    "RegistrationState",
    "Reply",
    "ReplyMeaning",
    "Role",
    "Schedule",
    "ScheduleRun",
    "Sender",
    "SenderKind",
    "SenderUsage",
    "TemplateApproval",
    "TemplateAuthor",
    "TemplateState",
    "TemplateVersion",
    "WebSession",
    "WebhookCursor",
    "WebhookDelivery",
    "WebhookSubscriber",
    "Zone",
    "ZoneCell",
    "ZonePart",
    "ZoneSubscription",
]
