"""Request and response schemas of the API: they validate requests and generate the OpenAPI document."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from alerting.base.models import AlertKind, AlertMode, AlertState, DeliveryState, Priority

NAME = validate.Length(min=1, max=100)
INT32 = validate.Range(min=1, max=2**31 - 1)


def _values(enum_cls: type) -> list[str]:
    return [m.value for m in enum_cls]  # type: ignore[attr-defined]


class TargetSchema(Schema):
    zones = fields.List(fields.String(validate=NAME), validate=validate.Length(max=200))
    groups = fields.List(fields.String(validate=NAME), validate=validate.Length(max=200))
    criteria = fields.Dict(allow_none=True,
                           metadata={"description": "criterion language, see alerting/directory/criteria.py"})
    exclude_groups = fields.List(fields.String(validate=NAME), validate=validate.Length(max=200))
    exclude_numbers = fields.List(fields.String(validate=validate.Length(min=1, max=32)),
                                  validate=validate.Length(max=10000))
    location_labels = fields.List(fields.String(validate=validate.Length(min=1, max=32)), allow_none=True)
    include_opted_out = fields.Boolean()


class PageQuerySchema(Schema):
    cursor = fields.String(validate=validate.Length(max=40),
                           metadata={"description": "next_cursor of the previous page"})
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class AlertCreateSchema(Schema):
    texts = fields.Dict(keys=fields.String(validate=validate.OneOf(["es", "en"])),
                        values=fields.String(validate=validate.Length(min=1, max=255 * 153)),
                        metadata={"description": "text per language (es, en), without the EXERCISE/TEST prefix; "
                                                 "required unless `template` gives them"})
    template = fields.String(validate=validate.Length(min=1, max=64), metadata={
        "description": "an APPROVED template (name or id) to start from: its texts with `template_values` filled "
                       "(the texts given here, if any, replace them). Unchanged but for its placeholders, the alert "
                       "needs one approver whatever its priority; changed, its priority's approvals"})
    template_values = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=32)),
                                  values=fields.String(validate=validate.Length(max=160)),
                                  metadata={"description": "a value per placeholder the template declares"})
    mode = fields.String(required=True, validate=validate.OneOf(_values(AlertMode)))
    sender = fields.String(required=True, validate=validate.Length(min=1, max=64))
    priority = fields.String(validate=validate.OneOf(_values(Priority)),
                             metadata={"description": "default: the template's hint, else normal"})
    title = fields.String(load_default="", validate=validate.Length(max=200))
    target = fields.Nested(TargetSchema, load_default=dict)
    scheduled_at = fields.AwareDateTime(allow_none=True, metadata={"description": "ISO 8601 with an offset"})
    ack_deadline_s = fields.Integer(allow_none=True, validate=validate.Range(min=60, max=7 * 86400))
    poll_options = fields.List(fields.String(validate=validate.Length(min=1, max=64)), allow_none=True,
                               validate=validate.Length(max=9))
    quiet_override_reason = fields.String(validate=validate.Length(min=1, max=2000),
                                          metadata={"description": "needed to schedule a test or drill at night"})
    incident_id = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=2**31 - 1),
                                 metadata={"description": "an open incident the alert joins (GET /incidents)"})


class AlertListQuerySchema(PageQuerySchema):
    state = fields.String(validate=validate.OneOf(_values(AlertState)))


class ScheduleTemplateSchema(Schema):
    texts = fields.Dict(keys=fields.String(validate=validate.OneOf(["es", "en"])),
                        values=fields.String(validate=validate.Length(min=1, max=2000)), required=True)
    mode = fields.String(required=True, validate=validate.OneOf(_values(AlertMode)))
    sender = fields.String(required=True, validate=validate.Length(min=1, max=64))
    priority = fields.String(validate=validate.OneOf(_values(Priority)))
    title = fields.String(validate=validate.Length(max=200))
    target = fields.Nested(TargetSchema)
    ack_deadline_s = fields.Integer(validate=validate.Range(min=60, max=7 * 86400))


class ScheduleCreateSchema(Schema):
    name = fields.String(required=True, validate=NAME)
    rule = fields.String(required=True, validate=validate.Length(min=9, max=120),
                         metadata={"description": "5-field cron; day-of-month AND day-of-week both apply"})
    timezone = fields.String(required=True, validate=validate.Length(min=1, max=64))
    policy = fields.String(load_default="draft", validate=validate.OneOf(["draft", "preapproved_exercise"]))
    template = fields.Nested(ScheduleTemplateSchema, required=True)
    quiet_override_reason = fields.String(validate=validate.Length(min=1, max=2000))


class ScheduleSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    rule = fields.String(required=True)
    timezone = fields.String(required=True)
    policy = fields.String(required=True)
    template = fields.Dict(required=True)
    next_run_at = fields.DateTime(required=True)
    last_run_at = fields.DateTime(allow_none=True)
    active = fields.Boolean(required=True)
    approved = fields.Boolean(required=True)
    quiet_override_reason = fields.String(allow_none=True)


class ApproveSchema(Schema):
    seen_hash = fields.String(required=True, validate=validate.Length(equal=64),
                              metadata={"description": "the approval_hash of the version the approver reviewed "
                                                       "(GET /alerts/{id}); required. Another one is refused (403): "
                                                       "the alert changed since it was read"})
    override_reason = fields.String(validate=validate.Length(min=1, max=2000))


class CorrectionSchema(Schema):
    text = fields.String(validate=validate.Length(min=1, max=2000),
                         metadata={"description": "leave out: only the pre-approved text is sent in one step. A text "
                                                  "here is refused (403, audited); propose it with POST "
                                                  "/alerts/{id}/corrections, which needs approval"})


class CorrectionProposalSchema(Schema):
    text = fields.String(required=True, validate=validate.Length(min=1, max=1000),
                         metadata={"description": "the correction's text; the system prefixes the correction (or "
                                                  "cancellation) marker and the original's reference"})
    kind = fields.String(load_default="correction", validate=validate.OneOf(["correction", "cancel"]),
                         metadata={"description": "correction, or cancel for a cancellation notice"})


class ReasonSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class AlertSchema(Schema):
    id = fields.Integer(required=True)
    reference = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(_values(AlertKind)))
    mode = fields.String(required=True, validate=validate.OneOf(_values(AlertMode)))
    priority = fields.String(required=True, validate=validate.OneOf(_values(Priority)))
    state = fields.String(required=True, validate=validate.OneOf(_values(AlertState)))
    title = fields.String(required=True)
    sender = fields.String(required=True)
    reply_keyword = fields.String(allow_none=True, metadata={
        "description": "the sender is a shared short code: replies reach us when they start with this keyword "
                       "(Sirena writes it into the SMS's reply instruction) or quote reply_code"})
    texts = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    target = fields.Dict(required=True)
    reply_code = fields.String(required=True)
    origin = fields.String(required=True)
    approval_hash = fields.String(allow_none=True)
    scheduled_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime(allow_none=True)
    corrects_alert_id = fields.Integer(allow_none=True)
    incident_id = fields.Integer(allow_none=True, metadata={"description": "the incident it belongs to"})
    reason = fields.String(allow_none=True)
    required_approvals = fields.Integer(metadata={"description": "approvals by other operators it needs"})
    template = fields.Dict(allow_none=True, metadata={
        "description": "the approved template version it was built from and its placeholder values "
                       "({id, version, values}), or null"})
    submitted_recipients = fields.Integer(allow_none=True, metadata={
        "description": "recipients the target resolved to at submission, covered by approval_hash (null for a "
                       "correction: it goes to the original's audience)"})
    counts = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True,
                         metadata={"description": "live counts of recipients (people) by delivery state; failed and "
                                                  "expired are final and never go down; retrying: undelivered once "
                                                  "and re-sent through another carrier, not final yet (ends "
                                                  "delivered or failed); a contact tried on its next number counts "
                                                  "once, in the state of that delivery"})
    counts_by_carrier = fields.Dict(keys=fields.String(), values=fields.Dict(keys=fields.String(),
                                                                                values=fields.Integer()),
                                    metadata={"description": "messages per carrier by state (next_number: failed "
                                                             "there, the contact then tried on its next number)"})


class AlertPageSchema(Schema):
    items = fields.List(fields.Nested(AlertSchema), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


class DeliveryQuerySchema(PageQuerySchema):
    state = fields.String(validate=validate.OneOf(_values(DeliveryState)))


class DeliverySchema(Schema):
    id = fields.Integer(required=True)
    msisdn = fields.String(required=True)
    contact_id = fields.Integer(allow_none=True)
    number_position = fields.Integer(required=True, metadata={
        "description": "which of the contact's numbers this is: 1 (the first, what fan-out writes), 2 or 3"})
    previous_delivery_id = fields.Integer(allow_none=True, metadata={
        "description": "the delivery on the number before, which failed for good (state next_number)"})
    state = fields.String(required=True, metadata={
        "description": "next_number: failed for good on this number, the contact tried on its next one "
                       "(counted once, by that delivery)"})
    language = fields.String(required=True)
    carrier = fields.String(allow_none=True)
    parts = fields.Integer(allow_none=True)
    attempts = fields.Integer(required=True)
    error_code = fields.String(allow_none=True)
    submitted_at = fields.DateTime(allow_none=True)
    delivered_at = fields.DateTime(allow_none=True)
    updated_at = fields.DateTime(allow_none=True)


class DeliveryPageSchema(Schema):
    items = fields.List(fields.Nested(DeliverySchema), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


class ReplySchema(Schema):
    id = fields.Integer(required=True)
    msisdn = fields.String(required=True)
    meaning = fields.String(required=True)
    poll_answer = fields.String(allow_none=True)
    text = fields.String(allow_none=True)
    delivery_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime(allow_none=True)


class ReplyPageSchema(Schema):
    items = fields.List(fields.Nested(ReplySchema), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


class UnmatchedReplySchema(Schema):
    id = fields.Integer(required=True)
    msisdn_last4 = fields.String(required=True, metadata={"description": "the sender's last 4 digits only"})
    meaning = fields.String(required=True)
    text = fields.String(allow_none=True, metadata={
        "description": 'as decoded, or "(binary, N bytes, data_coding 0xNN)" when the payload was not text'})
    reason = fields.String(required=True, validate=validate.OneOf(["unmatched_sender", "no_open_alert",
                                                                    "unknown_keyword"]))
    carrier = fields.String(allow_none=True)
    to = fields.String(required=True, metadata={"description": "our number (short code) it was sent to"})
    received_at = fields.DateTime(required=True)


class UnmatchedReplyPageSchema(Schema):
    items = fields.List(fields.Nested(UnmatchedReplySchema), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


class PreviewRequestSchema(Schema):
    target = fields.Nested(TargetSchema, required=True)
    text = fields.String(validate=validate.Length(min=1, max=255 * 153))
    texts = fields.Dict(keys=fields.String(validate=validate.OneOf(["es", "en"])),
                        values=fields.String(validate=validate.Length(min=1, max=255 * 153)))


class PreviewSchema(Schema):
    total = fields.Integer(required=True)
    matched = fields.Integer(required=True)
    removed_by_criteria = fields.Integer(required=True)
    excluded = fields.Integer(required=True)
    opted_out_excluded = fields.Integer(required=True)
    opted_out_included = fields.Integer(required=True)
    include_opted_out = fields.Boolean(required=True)
    by_zone = fields.List(fields.Dict(), required=True)
    by_group = fields.List(fields.Dict(), required=True)
    by_language = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    zone_versions = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    sms = fields.Dict(allow_none=True)
    opt_out_policy = fields.Dict(allow_none=True)


_MORE_NUMBERS = {"description": "the contact's second and third numbers, in the order they are tried after "
                                 "`msisdn` when a message fails for good on one (at most 2)"}


class ContactCreateSchema(Schema):
    msisdn = fields.String(required=True, validate=validate.Length(min=3, max=32))
    more_numbers = fields.List(fields.String(validate=validate.Length(max=32)), load_default=list,
                               validate=validate.Length(max=2), metadata=_MORE_NUMBERS)
    name = fields.String(load_default="", validate=validate.Length(max=200))
    language = fields.String(load_default="es", validate=validate.Length(min=2, max=8))
    attributes = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=64)), load_default=dict)
    groups = fields.List(fields.String(validate=NAME), load_default=list, validate=validate.Length(max=100))


class ContactUpdateSchema(Schema):
    name = fields.String(validate=validate.Length(max=200))
    more_numbers = fields.List(fields.String(validate=validate.Length(max=32)), validate=validate.Length(max=2),
                               metadata={"description": "replaces the second and third numbers ([] for none)"})
    language = fields.String(validate=validate.Length(min=2, max=8))
    attributes = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=64)))
    opted_out = fields.Boolean()
    opt_out_reason = fields.String(validate=validate.Length(min=1, max=500))


class ContactSchema(Schema):
    id = fields.Integer(required=True)
    msisdn = fields.String(required=True)
    more_numbers = fields.List(fields.String(), required=True, metadata=_MORE_NUMBERS)
    name = fields.String(required=True)
    language = fields.String(required=True)
    attributes = fields.Dict(required=True)
    opted_out = fields.Boolean(required=True)
    groups = fields.List(fields.String(), required=True)


class ContactPageSchema(Schema):
    items = fields.List(fields.Nested(ContactSchema), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


class ImportReportSchema(Schema):
    filename = fields.String(required=True)
    dry_run = fields.Boolean(required=True)
    rows_read = fields.Integer(required=True)
    rejected = fields.Integer(required=True)
    warnings = fields.Integer(required=True)
    duplicates = fields.Integer(required=True)
    contacts = fields.Integer(required=True)
    inserted = fields.Integer(required=True)
    updated = fields.Integer(required=True)
    unchanged = fields.Integer(required=True)
    memberships = fields.Integer(required=True)
    numbers = fields.Integer(required=True, metadata={
        "description": "second and third numbers written, new or moved (columns telefono2/phone2, telefono3/phone3); "
                       "a dry run: those in the file"})
    groups_created = fields.List(fields.String(), required=True)
    import_id = fields.Integer(allow_none=True)
    rejects = fields.List(fields.Dict(), required=True,
                          metadata={"description": "the first rejected or doubtful rows with column and reason"})


class ImportQuerySchema(Schema):
    group = fields.String(validate=NAME)
    dry_run = fields.Boolean(load_default=False)


class GroupCreateSchema(Schema):
    name = fields.String(required=True, validate=NAME)
    kind = fields.String(load_default="static", validate=validate.OneOf(["static", "dynamic"]))
    criterion = fields.Dict(allow_none=True)
    drill_allowed = fields.Boolean(load_default=False)
    description = fields.String(load_default="", validate=validate.Length(max=2000))


class GroupSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    kind = fields.String(required=True)
    criterion = fields.Dict(allow_none=True)
    drill_allowed = fields.Boolean(required=True)
    description = fields.String(required=True)
    members = fields.Integer(required=True)


class MembersSchema(Schema):
    msisdns = fields.List(fields.String(validate=validate.Length(min=3, max=32)), required=True,
                          validate=validate.Length(min=1, max=10000))


class MembersAddedSchema(Schema):
    added = fields.Integer(required=True)


class MembersRemovedSchema(Schema):
    removed = fields.Integer(required=True, metadata={"description": "members taken out of the group"})
    not_members = fields.List(fields.String(), required=True,
                              metadata={"description": "asked numbers (E.164) that were not in the group"})


class GroupUpdateSchema(Schema):
    description = fields.String(validate=validate.Length(max=2000))
    criterion = fields.Dict(allow_none=True, metadata={"description": "dynamic groups only; criterion language, "
                                                                      "see alerting/directory/criteria.py"})
    drill_allowed = fields.Boolean(metadata={"description": "unmarking is refused (403) while a drill aims at it"})


class GroupDeletedSchema(Schema):
    deleted = fields.Boolean(required=True)
    name = fields.String(required=True)
    members = fields.Integer(required=True, metadata={"description": "memberships removed with it"})


class ZoneCreateSchema(Schema):
    name = fields.String(validate=NAME, metadata={"description": "one zone of this name from the whole GeoJSON"})
    geojson = fields.Dict(required=True, metadata={"description": "Feature, FeatureCollection, Polygon, MultiPolygon"})
    repair = fields.Boolean(load_default=False)


class ZoneResultSchema(Schema):
    name = fields.String(required=True)
    version = fields.Integer(required=True)
    zone_id = fields.Integer(required=True)
    created = fields.Boolean(required=True)
    area_km2 = fields.Float(required=True)
    vertices = fields.Integer(required=True)
    warnings = fields.List(fields.String(), required=True)
    repairs = fields.List(fields.String(), required=True)


class ZoneSummarySchema(Schema):
    name = fields.String(required=True)
    version = fields.Integer(required=True)
    versions = fields.Integer(required=True)
    source = fields.String(required=True)
    area_km2 = fields.Float(required=True)
    created_at = fields.String(allow_none=True)


class ZoneFeatureSchema(Schema):
    type = fields.String(required=True)
    geometry = fields.Dict(required=True)
    properties = fields.Dict(required=True)


class DeletedSchema(Schema):
    deleted = fields.Boolean(required=True)


class ZoneDeletedSchema(Schema):
    deleted = fields.Boolean(required=True)
    name = fields.String(required=True)
    version = fields.Integer(required=True, metadata={"description": "the last version; every version is kept"})


class HealthSchema(Schema):
    status = fields.String(required=True)
    checks = fields.Dict(keys=fields.String(), values=fields.Dict())


class CapImportedSchema(Schema):
    alert_id = fields.Integer(allow_none=True)
    reference = fields.String(allow_none=True)
    state = fields.String(allow_none=True)
    action = fields.String(required=True, metadata={"description": "drafted / cancel_drafted / correction_drafted / "
                                                                   "duplicate"})
    mode = fields.String(allow_none=True)
    zones = fields.List(fields.String(), required=True)
    signed_by = fields.String(allow_none=True)
    warnings = fields.List(fields.String(), required=True)
