"""factory_boy factories for the data model; the session is set per test by the `factories` fixture."""

from __future__ import annotations

import factory
from factory.alchemy import SQLAlchemyModelFactory
from geoalchemy2.elements import WKTElement

from alerting.base.models import (
    Alert,
    AlertMode,
    AlertState,
    Contact,
    ContactLocation,
    Group,
    GroupKind,
    GroupMember,
    Operator,
    Priority,
    Sender,
    SenderKind,
)
from audit.actor import Actor


class _Base(SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session_persistence = "flush"


class OperatorFactory(_Base):
    class Meta:
        model = Operator

    username = factory.Sequence(lambda n: f"operator{n}")
    password_hash = "not-a-usable-hash"
    roles = factory.LazyFunction(lambda: ["composer"])


class ContactFactory(_Base):
    class Meta:
        model = Contact

    msisdn = factory.Sequence(lambda n: f"+5691{n:07d}")
    name = factory.Sequence(lambda n: f"Contacto {n}")
    language = "es"
    attributes = factory.LazyFunction(dict)


class LocationFactory(_Base):
    class Meta:
        model = ContactLocation

    contact = None
    contact_id = factory.LazyAttribute(lambda o: o.contact.id)
    label = "home"
    lon = -70.65
    lat = -33.45
    geom = factory.LazyAttribute(lambda o: WKTElement(f"POINT({o.lon} {o.lat})", srid=4326))

    class Params:
        pass

    @classmethod
    def _adjust_kwargs(cls, **kwargs):  # type: ignore[no-untyped-def]
        kwargs.pop("contact", None)
        kwargs.pop("lon", None)
        kwargs.pop("lat", None)
        return kwargs


class GroupFactory(_Base):
    class Meta:
        model = Group

    name = factory.Sequence(lambda n: f"grupo-{n}")
    kind = GroupKind.STATIC
    drill_allowed = False


class SenderFactory(_Base):
    class Meta:
        model = Sender

    name = factory.Sequence(lambda n: f"SENDER{n}")
    kind = SenderKind.SHORT
    address = factory.Sequence(lambda n: f"{4000 + n}")
    active = True
    test_route = True  # as if a carrier marked `test` carried it (the simulator's are)


class AlertFactory(_Base):
    class Meta:
        model = Alert

    reference = factory.Sequence(lambda n: f"A-TEST-{n:06d}")
    reply_code = factory.Sequence(lambda n: f"{1000 + n % 9000}")
    mode = AlertMode.LIVE
    priority = Priority.NORMAL
    state = AlertState.DRAFT
    sender_name = "SIRENA-SC"
    texts = factory.LazyFunction(lambda: {"es": "Alerta de prueba"})
    target = factory.LazyFunction(dict)
    composed_by_id = factory.LazyAttribute(lambda o: OperatorFactory().id)


ALL = [OperatorFactory, ContactFactory, LocationFactory, GroupFactory, SenderFactory, AlertFactory]


def add_member(session, group: Group, contact: Contact) -> None:  # type: ignore[no-untyped-def]
    session.add(GroupMember(group_id=group.id, contact_id=contact.id))
    session.flush()


def actor_for(operator: Operator, interface: str = "console") -> Actor:
    return Actor(kind="operator", name=operator.username, operator_id=operator.id,
                 roles=frozenset(operator.roles), interface=interface)


def stored_reply(session, number: str, body: str | None, *, alert_id: int | None = None,  # type: ignore[no-untyped-def]
                 reason: str | None = None, meaning: str = "free_text", payload: bytes | None = None,
                 data_coding: int = 0, carrier: str = "alpha") -> int:
    """A reply as inbound processing leaves it: its raw inbound row (payload: the bytes as they came,
    `body` encoded when not given) and the reply, matched to `alert_id` or unmatched for `reason`."""
    from sqlalchemy import text

    inbound = session.execute(text("""
        INSERT INTO inbound_messages (kind, carrier, bind, source_addr, destination_addr, data_coding, short_message,
                                      text, processed_at, outcome)
        VALUES ('mo', :c, :c || '-1', :n, '4242', :dc, :p, :t, now(), :o) RETURNING id"""),
        {"c": carrier, "n": number.lstrip("+"), "dc": data_coding, "t": body, "o": reason or "matched",
         "p": payload if payload is not None else (body or "").encode()}).scalar_one()
    return session.execute(text("""
        INSERT INTO replies (inbound_id, alert_id, msisdn, meaning, text, unmatched_reason)
        VALUES (:i, :a, :n, :m, :t, :r) RETURNING id"""),
        {"i": inbound, "a": alert_id, "n": number, "m": meaning, "t": body, "r": reason}).scalar_one()


def unmatched_world(db, factories) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Three unmatched replies (one binary) and one that answered an alert."""
    stored_reply(db, "+56970001111", "ACK", alert_id=factories.AlertFactory().id, meaning="ack")
    return {
        "stranger": stored_reply(db, "+56970009876", "¿Qué pasa en el cerro?", reason="unmatched_sender",
                                 carrier="beta"),
        "binary": stored_reply(db, "+56970005555", None, reason="unmatched_sender", payload=b"\x00\xff\x10",
                               data_coding=4),
        "keyword": stored_reply(db, "+56970004321", "POLICIA ACK", reason="unknown_keyword"),
    }


def audience_group(session, name: str = "brigadas", members: int = 1) -> Group:  # type: ignore[no-untyped-def]
    """A static group with `members` contacts: a target a live alert may be submitted to (a live
    alert that reaches nobody is refused at submission)."""
    group = GroupFactory(name=name)
    for _ in range(members):
        add_member(session, group, ContactFactory())
    return group
