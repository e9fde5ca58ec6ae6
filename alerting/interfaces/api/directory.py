"""Contacts, groups and zones over the API, and the bulk contact import (CSV body)."""

from __future__ import annotations

import io
from typing import Any

from flask import current_app, g, request
from sqlalchemy import select

from alerting.base.db import transaction
from alerting.base.errors import InvalidInput
from alerting.base.models import Contact, Group
from alerting.base.settings import Settings
from alerting.directory import areas, contact_numbers, contact_records
from alerting.directory import contacts as directory
from alerting.directory.contact_import import read_rejects
from alerting.interfaces.api import api_bp
from alerting.interfaces.api.alerts import parse_cursor
from alerting.interfaces.api.framework import operation
from alerting.interfaces.api.schemas import (
    ContactCreateSchema,
    ContactPageSchema,
    ContactSchema,
    ContactUpdateSchema,
    DeletedSchema,
    GroupCreateSchema,
    GroupDeletedSchema,
    GroupSchema,
    GroupUpdateSchema,
    ImportQuerySchema,
    ImportReportSchema,
    MembersAddedSchema,
    MembersRemovedSchema,
    MembersSchema,
    PageQuerySchema,
    PreviewRequestSchema,
    PreviewSchema,
    ZoneCreateSchema,
    ZoneDeletedSchema,
    ZoneFeatureSchema,
    ZoneResultSchema,
    ZoneSummarySchema,
)
from geo import targeting, zone_files, zones

MAX_IMPORT_BYTES = 50 * 1024 * 1024
REJECTS_SHOWN = 100


def _settings() -> Settings:
    return current_app.config["SIRENA_SETTINGS"]


def _contact_view(session: Any, contact: Contact, more: list[str] | None = None) -> dict[str, Any]:
    return {"id": contact.id, "msisdn": contact.msisdn,
            "more_numbers": contact_numbers.more_numbers(session, contact.id) if more is None else more,
            "name": contact.name, "language": contact.language,
            "attributes": contact.attributes or {}, "opted_out": contact.opted_out_at is not None,
            "groups": contact_records.contact_groups(session, contact.id)}


@operation(api_bp, "GET", "/contacts", summary="Contacts, by id, cursor-paginated", tag="directory",
           query=PageQuerySchema, response=ContactPageSchema, scope="read", action="directory.read")
def list_contacts(query: dict[str, Any]) -> dict[str, Any]:
    after, limit = parse_cursor(query.get("cursor")), query["limit"]
    with transaction() as session:
        rows = list(session.scalars(select(Contact).where(Contact.id > after).order_by(Contact.id).limit(limit + 1)))
        more = len(rows) > limit
        numbers = contact_numbers.more_numbers_of(session, [c.id for c in rows[:limit]])
        items = [_contact_view(session, c, numbers.get(c.id, [])) for c in rows[:limit]]
    return {"items": items, "next_cursor": str(items[-1]["id"]) if more else None}


@operation(api_bp, "POST", "/contacts", summary="Add one contact", tag="directory", body=ContactCreateSchema,
           response=ContactSchema, status=201, scope="contacts:write", action="contacts.write")
def create_contact(body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    with transaction() as session:
        contact = contact_records.create_contact(
            session, body["msisdn"], name=body["name"], language=body["language"], attributes=body["attributes"],
            groups=body["groups"], more_numbers=body["more_numbers"], region=_settings().default_region,
            actor=g.actor)
        return _contact_view(session, contact), 201


@operation(api_bp, "GET", "/contacts/<int:contact_id>", summary="One contact", tag="directory",
           response=ContactSchema, scope="read", action="directory.read")
def get_contact(contact_id: int) -> dict[str, Any]:
    with transaction() as session:
        return _contact_view(session, contact_records.get_contact_by_id(session, contact_id))


@operation(api_bp, "PATCH", "/contacts/<int:contact_id>", summary="Change a contact, or opt it out/in",
           tag="directory", body=ContactUpdateSchema, response=ContactSchema, scope="contacts:write",
           action="contacts.write")
def update_contact(contact_id: int, body: dict[str, Any]) -> dict[str, Any]:
    with transaction() as session:
        contact = contact_records.update_contact(session, contact_id, body, actor=g.actor,
                                                 region=_settings().default_region)
        return _contact_view(session, contact)


@operation(api_bp, "DELETE", "/contacts/<int:contact_id>", summary="Remove a contact", tag="directory",
           response=DeletedSchema, scope="contacts:write", action="contacts.write")
def delete_contact(contact_id: int) -> dict[str, Any]:
    with transaction() as session:
        contact_records.delete_contact(session, contact_id, actor=g.actor)
    return {"deleted": True}


@operation(api_bp, "POST", "/contacts/import", summary="Bulk import a contacts CSV (body: text/csv)",
           tag="directory", query=ImportQuerySchema, response=ImportReportSchema, scope="contacts:write",
           action="contacts.write",
           raw_body="text/csv",
           description="Every good row is imported; every bad row is reported with its column and reason.")
def import_contacts(query: dict[str, Any]) -> dict[str, Any]:
    raw = request.get_data(cache=False)
    if not raw:
        raise InvalidInput("body: send the CSV file as the request body", fields={"body": "empty"})
    if len(raw) > MAX_IMPORT_BYTES:
        raise InvalidInput(f"body: larger than {MAX_IMPORT_BYTES} bytes; use `sirena contacts import`",
                           fields={"body": "too large"})
    source = io.BytesIO(raw)
    source.name = "api-upload.csv"
    with transaction() as session:
        report = directory.import_contacts(session, source, settings=_settings(), group=query.get("group"),
                                           dry_run=query["dry_run"], actor=g.actor, max_bytes=MAX_IMPORT_BYTES)
    out = report.as_dict()
    out["rejects"] = read_rejects(report.rejects_path, REJECTS_SHOWN)
    return out


def _group_view(group: Group, members: int) -> dict[str, Any]:
    return {"id": group.id, "name": group.name, "kind": group.kind.value, "criterion": group.criterion,
            "drill_allowed": group.drill_allowed, "description": group.description, "members": members}


@operation(api_bp, "GET", "/groups", summary="Every group", tag="directory", response=GroupSchema, many=True,
           scope="read", action="directory.read")
def list_groups() -> list[dict[str, Any]]:
    with transaction() as session:
        counts = directory.member_counts(session)
        return [_group_view(gr, counts.get(gr.id, 0)) for gr in directory.list_groups(session)]


@operation(api_bp, "POST", "/groups", summary="Create a static or dynamic group", tag="directory",
           body=GroupCreateSchema, response=GroupSchema, status=201, scope="groups:write", action="groups.write")
def create_group(body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    with transaction() as session:
        group = directory.create_group(session, body["name"], kind=body["kind"], criterion=body.get("criterion"),
                                       drill_allowed=body["drill_allowed"], description=body["description"],
                                       actor=g.actor)
        return _group_view(group, 0), 201


@operation(api_bp, "GET", "/groups/<string:name>", summary="One group by name", tag="directory",
           response=GroupSchema, scope="read", action="directory.read")
def get_group(name: str) -> dict[str, Any]:
    with transaction() as session:
        group = directory.get_group_by_name(session, name)
        return _group_view(group, directory.member_counts(session).get(group.id, 0))


@operation(api_bp, "POST", "/groups/<string:name>/members", summary="Add contacts (by number) to a static group",
           tag="directory", body=MembersSchema, response=MembersAddedSchema, scope="groups:write",
           action="groups.write")
def add_members(name: str, body: dict[str, Any]) -> dict[str, Any]:
    with transaction() as session:
        added = directory.add_members(session, name, body["msisdns"], region=_settings().default_region,
                                      actor=g.actor)
    return {"added": added}


@operation(api_bp, "PATCH", "/groups/<string:name>", summary="Change a group's description, criterion or drill marking",
           tag="directory", body=GroupUpdateSchema, response=GroupSchema, scope="groups:write", action="groups.write",
           description="Only the fields given change; the criterion only of a dynamic group. Unmarking "
                       "drill_allowed is refused (403, audited) while an unfinished exercise or test aims at it.")
def update_group(name: str, body: dict[str, Any]) -> dict[str, Any]:
    with transaction() as session:
        group = directory.update_group(session, name, body, actor=g.actor)
        return _group_view(group, directory.member_counts(session).get(group.id, 0))


@operation(api_bp, "DELETE", "/groups/<string:name>", summary="Delete a group (its members stay contacts)",
           tag="directory", response=GroupDeletedSchema, scope="groups:write", action="groups.write",
           description="Refused (403, audited, naming them) while an unfinished alert or an active schedule "
                       "targets, excludes or escalates to the group.")
def delete_group(name: str) -> dict[str, Any]:
    with transaction() as session:
        members = directory.delete_group(session, name, actor=g.actor)
    return {"deleted": True, "name": name, "members": members}


@operation(api_bp, "POST", "/groups/<string:name>/members/remove",
           summary="Take contacts (by number) out of a static group", tag="directory", body=MembersSchema,
           response=MembersRemovedSchema, scope="groups:write", action="groups.write")
def remove_members(name: str, body: dict[str, Any]) -> dict[str, Any]:
    with transaction() as session:
        result = directory.remove_members(session, name, body["msisdns"], region=_settings().default_region,
                                          actor=g.actor)
    return {"removed": result.removed, "not_members": result.not_members}


@operation(api_bp, "GET", "/zones", summary="Current zones", tag="geo", response=ZoneSummarySchema, many=True,
           scope="read", action="directory.read")
def list_zones() -> list[dict[str, Any]]:
    with transaction() as session:
        return zones.list_zones(session)


@operation(api_bp, "POST", "/zones", summary="Save zones from GeoJSON (new versions when changed)", tag="geo",
           body=ZoneCreateSchema, response=ZoneResultSchema, many=True, status=201, scope="zones:write",
           action="zones.write",
           description="At most 25 zones and 50,000 vertices per request (the body at most 5 MB): more is "
                       "refused (422 naming the count); a bigger set goes through `sirena zones import`, which "
                       "saves it in batches.")
def create_zones(body: dict[str, Any]) -> tuple[list[Any], int]:
    # Checked before the transaction opens, which then holds only the saving (at most 25 zones).
    checked = zone_files.check_geojson(body["geojson"], name=body.get("name"), repair=body["repair"],
                                       region=_settings().default_region, limits=zone_files.REQUEST_LIMITS)
    with transaction() as session:
        results = zones.store_zones(session, checked, actor=g.actor)
        return [r.to_json() for r in results], 201


@operation(api_bp, "GET", "/zones/<string:name>", summary="A zone as a GeoJSON Feature", tag="geo",
           response=ZoneFeatureSchema, scope="read", action="directory.read")
def get_zone(name: str) -> dict[str, Any]:
    with transaction() as session:
        return zones.zone_geojson(session, name)


@operation(api_bp, "DELETE", "/zones/<string:name>", summary="Retire a zone (its versions are kept)", tag="geo",
           response=ZoneDeletedSchema, scope="zones:write", action="zones.write",
           description="No version stays current; alerts pinned to a version still resolve it. Refused (403, "
                       "audited, naming them) while an unfinished alert or an active schedule names the zone.")
def delete_zone(name: str) -> dict[str, Any]:
    with transaction() as session:
        zone = zones.delete_zone(session, name, actor=g.actor)
        return {"deleted": True, "name": zone.name, "version": zone.version}


@operation(api_bp, "POST", "/targets/preview", summary="Count recipients without writing anything",
           tag="alerts", body=PreviewRequestSchema, response=PreviewSchema, scope="read", action="alerts.preview")
def preview_targets(body: dict[str, Any]) -> dict[str, Any]:
    spec = targeting.TargetSpec.from_json({k: v for k, v in body["target"].items() if v is not None},
                                          region=_settings().default_region)
    with transaction() as session:
        areas.require_within(session, g.actor, body["target"], doing="preview")  # an area-bounded operator
        result = targeting.preview(session, spec, text=body.get("text"), languages=body.get("texts"))
    return result.to_json()
