"""What an admin publishes for self-registration: the keywords residents may text after ALTA/JOIN
(each names one zone or one static group), and the policy (on/off, time to confirm, hourly limit).

Every change needs the `registration.manage` permission and is audited. A keyword is one word of
letters and digits (at least one letter: a four-digit word is a reply code), compared folded
(`Centro`, `CENTRO` and `céntro` are one keyword), and never a reply word (`SI`, `BAJA`, `AYUDA`…),
which a resident's answer would be mistaken for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from alerting.base.db import utcnow
from alerting.base.errors import InvalidInput, NotFound
from alerting.base.models import (
    Group,
    GroupKind,
    Registration,
    RegistrationKeyword,
    RegistrationPolicy,
    RegistrationState,
    Zone,
)
from alerting.base.sms_text.vocabulary import DEFAULT, Vocabulary, fold, tokens
from alerting.directory import permissions
from audit import trail
from audit.actor import Actor

_KEYWORD = re.compile(r"^[a-z0-9]{2,20}$")
MAX_DESCRIPTION = 200


@dataclass(frozen=True)
class Policy:
    enabled: bool
    confirm_within_s: int
    per_hour: int

    def as_dict(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "confirm_within_s": self.confirm_within_s, "per_hour": self.per_hour}


def load_policy(session: Session) -> Policy:
    """The registration policy as it is now (off, 24 h, 3 an hour until an admin changes it)."""
    row = session.get(RegistrationPolicy, 1)
    if row is None:  # the migration writes it; a missing row means off
        return Policy(False, 86400, 3)
    return Policy(row.enabled, row.confirm_within_s, row.per_hour)


def set_policy(session: Session, *, enabled: bool | None = None, confirm_within_s: int | None = None,
               per_hour: int | None = None, actor: Actor) -> Policy:
    """Change the policy (only what is given). Raises InvalidInput naming the field, Refused. Audited
    as "registration.policy_changed" with before and after."""
    permissions.require(actor, "registration.manage", "change self-registration")
    problems: dict[str, str] = {}
    if confirm_within_s is not None and not 60 <= confirm_within_s <= 30 * 86400:
        problems["confirm_within_s"] = "between 1 minute and 30 days"
    if per_hour is not None and not 1 <= per_hour <= 100:
        problems["per_hour"] = "between 1 and 100 requests an hour"
    if problems:
        raise InvalidInput(f"{next(iter(problems))}: {next(iter(problems.values()))}", fields=problems)
    row = session.get(RegistrationPolicy, 1, with_for_update=True)
    if row is None:
        row = RegistrationPolicy(id=1, enabled=False, confirm_within_s=86400, per_hour=3)
        session.add(row)
    before = Policy(row.enabled, row.confirm_within_s, row.per_hour)
    if enabled is not None:
        row.enabled = enabled
    if confirm_within_s is not None:
        row.confirm_within_s = confirm_within_s
    if per_hour is not None:
        row.per_hour = per_hour
    row.updated_by, row.updated_at = actor.name[:64], utcnow()
    session.flush()
    after = Policy(row.enabled, row.confirm_within_s, row.per_hour)
    if after != before:
        trail.append(session, actor=actor, action="registration.policy_changed", subject_type="registration_policy",
                     subject_id=1, payload={"before": before.as_dict(), "after": after.as_dict()})
    return after


def normalize_keyword(keyword: str, vocabulary: Vocabulary = DEFAULT) -> str:
    """The keyword as stored (folded). Raises InvalidInput on field "keyword"."""
    words = tokens(keyword or "")
    if len(words) != 1 or not _KEYWORD.match(words[0]) or words[0].isdigit():
        raise InvalidInput("keyword: one word of 2 to 20 letters and digits, at least one letter",
                           fields={"keyword": "one word of 2 to 20 letters and digits, at least one letter"})
    word = words[0]
    meaning = vocabulary.exact_meaning(word)
    if meaning is not None:
        raise InvalidInput(f'keyword: "{word.upper()}" is a reply word; a resident\'s answer would be misread',
                           meaning=meaning.value,
                           fields={"keyword": "a reply word such as YES, NO or STOP: a resident's answer would be "
                                              "misread"})
    if word in vocabulary.registration_languages:
        raise InvalidInput(f'keyword: "{word.upper()}" is a registration word',
                           fields={"keyword": "a registration word such as JOIN: use the zone's or group's name"})
    return word


def publish_keyword(session: Session, keyword: str, *, zone: str | None = None, group: str | None = None,
                    description: str = "", vocabulary: Vocabulary = DEFAULT, actor: Actor) -> RegistrationKeyword:
    """Publish `keyword` for one current zone or one static group. Raises InvalidInput (field
    keyword, zone, group or description), NotFound (the zone or group), Refused. Audited as
    "registration.keyword_published"."""
    permissions.require(actor, "registration.manage", "publish registration keywords")
    word = normalize_keyword(keyword, vocabulary)
    zone, group = (zone or "").strip() or None, (group or "").strip() or None
    if (zone is None) == (group is None):
        raise InvalidInput("target: name one zone or one group", fields={"zone": "name one zone or one group"})
    description = " ".join((description or "").split())
    if len(description) > MAX_DESCRIPTION:
        raise InvalidInput(f"description: at most {MAX_DESCRIPTION} characters",
                           fields={"description": f"at most {MAX_DESCRIPTION} characters"})
    group_row = None
    if zone is not None and session.scalar(select(Zone.id).where(Zone.name == zone, Zone.is_current)) is None:
        raise NotFound(f'zone "{zone}" does not exist', fields={"zone": f'zone "{zone}" does not exist'})
    if group is not None:
        group_row = session.scalar(select(Group).where(Group.name == group))
        if group_row is None:
            raise NotFound(f'group "{group}" does not exist', fields={"group": f'group "{group}" does not exist'})
        if group_row.kind is not GroupKind.STATIC:
            raise InvalidInput(f'group: "{group}" is dynamic; a resident can only join a static group',
                               fields={"group": "is a dynamic group"})
    existing = session.scalar(select(RegistrationKeyword).where(RegistrationKeyword.keyword == word))
    if existing is not None:
        raise InvalidInput(f'keyword: "{word.upper()}" is already published; unpublish it first',
                           fields={"keyword": "already published"})
    row = RegistrationKeyword(keyword=word, zone_name=zone, group_id=group_row.id if group_row else None,
                              description=description, published_by=actor.name[:64])
    session.add(row)
    session.flush()
    trail.append(session, actor=actor, action="registration.keyword_published", subject_type="registration_keyword",
                 subject_id=row.id, payload={"keyword": word, "zone": zone, "group": group,
                                             "description": description})
    return row


def unpublish_keyword(session: Session, keyword: str, *, actor: Actor) -> str:
    """Withdraw a keyword: new requests naming it are refused; who registered with it stays
    subscribed. Returns the keyword. Raises NotFound, Refused. Audited as "registration.keyword_unpublished"."""
    permissions.require(actor, "registration.manage", "unpublish registration keywords")
    word = fold((keyword or "").strip())
    row = session.scalar(select(RegistrationKeyword).where(RegistrationKeyword.keyword == word).with_for_update())
    if row is None:
        raise NotFound(f'keyword "{keyword}" is not published', fields={"keyword": "not published"})
    payload = {"keyword": word, "zone": row.zone_name, "group_id": row.group_id}
    session.execute(delete(RegistrationKeyword).where(RegistrationKeyword.id == row.id))
    trail.append(session, actor=actor, action="registration.keyword_unpublished",
                 subject_type="registration_keyword", subject_id=row.id, payload=payload)
    return word


def published_keywords(session: Session) -> list[str]:
    """The published keywords, folded, in order."""
    return list(session.scalars(select(RegistrationKeyword.keyword).order_by(RegistrationKeyword.keyword)))


def list_keywords(session: Session) -> list[dict[str, Any]]:
    """Published keywords with their target and how many registrations named them, by keyword."""
    counts = dict(session.execute(
        select(Registration.keyword, func.count()).where(Registration.state == RegistrationState.ACTIVE)
        .group_by(Registration.keyword)).all())
    rows = session.execute(select(RegistrationKeyword, Group.name)
                           .outerjoin(Group, Group.id == RegistrationKeyword.group_id)
                           .order_by(RegistrationKeyword.keyword)).all()
    return [{"keyword": k.keyword.upper(), "zone": k.zone_name, "group": group_name, "description": k.description,
             "published_by": k.published_by, "published_at": k.published_at, "registered": counts.get(k.keyword, 0)}
            for k, group_name in rows]
