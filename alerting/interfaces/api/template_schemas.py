"""Request and response schemas of the template library's API (alerting/interfaces/api/template_views.py)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from alerting.base.models import AlertMode, Priority, TemplateState

LANGS = fields.String(validate=validate.OneOf(["es", "en"]))


class PlaceholderSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=32),
                         metadata={"description": "written {name} in the texts; filled once per alert"})
    default = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=160),
                            metadata={"description": "used when compose gives no value; none: a value is required"})


class TemplateWriteSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=64),
                         metadata={"description": "lower-case letters, digits, - or _ (e.g. cierre-ruta)"})
    titles = fields.Dict(keys=LANGS, values=fields.String(validate=validate.Length(min=1, max=100)), required=True)
    texts = fields.Dict(keys=LANGS, values=fields.String(validate=validate.Length(min=1, max=2000)), required=True,
                        metadata={"description": "the SMS per language, declared placeholders written {name}"})
    placeholders = fields.List(fields.Nested(PlaceholderSchema), load_default=list,
                               validate=validate.Length(max=20))
    priority_hint = fields.String(allow_none=True, load_default=None,
                                  validate=validate.OneOf([p.value for p in Priority]))
    mode_hint = fields.String(allow_none=True, load_default=None,
                              validate=validate.OneOf([m.value for m in AlertMode]))


class TemplateSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    titles = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    texts = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    placeholders = fields.List(fields.Nested(PlaceholderSchema), required=True)
    priority_hint = fields.String(allow_none=True)
    mode_hint = fields.String(allow_none=True)
    state = fields.String(required=True, validate=validate.OneOf([s.value for s in TemplateState]))
    version = fields.Integer(required=True)
    approval_hash = fields.String(allow_none=True, metadata={
        "description": "fixed at submission over name, titles, texts, placeholders and hints; send it back as "
                       "seen_hash to approve"})
    required_approvals = fields.Integer(required=True)
    approvals = fields.List(fields.String(), required=True,
                            metadata={"description": "who approved the current version"})
    authors = fields.List(fields.String(), required=True,
                          metadata={"description": "who wrote or submitted any version: never its approvers"})
    reason = fields.String(allow_none=True)
    created_at = fields.DateTime(allow_none=True)
    updated_at = fields.DateTime(allow_none=True)
    approved_at = fields.DateTime(allow_none=True)


class TemplateListQuerySchema(Schema):
    state = fields.String(validate=validate.OneOf([s.value for s in TemplateState]))


class TemplateListSchema(Schema):
    items = fields.List(fields.Nested(TemplateSchema), required=True)


class TemplateVersionSchema(Schema):
    version = fields.Integer(required=True)
    name = fields.String(required=True)
    titles = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    texts = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    placeholders = fields.List(fields.Nested(PlaceholderSchema), required=True)
    priority_hint = fields.String(allow_none=True)
    mode_hint = fields.String(allow_none=True)
    content_hash = fields.String(required=True)
    written_by = fields.String(allow_none=True)
    written_at = fields.DateTime(allow_none=True)
    approved_at = fields.DateTime(allow_none=True)
    approvers = fields.List(fields.String(), required=True)


class TemplateHistorySchema(Schema):
    items = fields.List(fields.Nested(TemplateVersionSchema), required=True)


class TemplateApproveSchema(Schema):
    seen_hash = fields.String(required=True, validate=validate.Length(equal=64),
                              metadata={"description": "the approval_hash of the version you reviewed"})


class TemplateReasonSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))
