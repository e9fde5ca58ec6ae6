"""Small set-based factories for targeting tests: contacts with located points, groups, alerts."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from alerting.base.models import Alert, AlertMode, Group, GroupKind, GroupMember

_numbers = itertools.count(1)


class Directory:
    """Adds rows with one statement per call, the way real imports do."""

    def __init__(self, db: Session) -> None:
        self.db = db

    def contacts(
        self,
        points: Sequence[tuple[float, float] | None],
        *,
        label: str = "home",
        language: str = "es",
        opted_out: bool = False,
        attributes: dict[str, Any] | None = None,
    ) -> list[int]:
        """One contact per point (lon, lat); None adds a contact with no location. Returns ids in order."""
        start = next(_numbers)
        for _ in range(len(points) - 1):
            next(_numbers)
        msisdns = [f"+5698{start + i:07d}" for i in range(len(points))]
        ids = [r[0] for r in self.db.execute(text("""
            INSERT INTO contacts (msisdn, name, language, attributes, opted_out_at)
            SELECT m, '', :lang, CAST(:attrs AS jsonb), CASE WHEN :out THEN now() END
              FROM unnest(CAST(:msisdns AS text[])) WITH ORDINALITY AS t(m, n) ORDER BY n
            RETURNING id"""), {"lang": language, "attrs": _json(attributes or {}), "out": opted_out,
                               "msisdns": msisdns})]
        located = [(cid, p) for cid, p in zip(ids, points, strict=True) if p is not None]
        if located:
            self.locate([c for c, _ in located], [p for _, p in located], label=label)
        return ids

    def locate(self, contact_ids: Sequence[int], points: Sequence[tuple[float, float]], *, label: str = "home") -> None:
        self.db.execute(text("""
            INSERT INTO contact_locations (contact_id, label, geom)
            SELECT c, :label, ST_SetSRID(ST_MakePoint(x, y), 4326)
              FROM unnest(CAST(:c AS bigint[]), CAST(:x AS float8[]), CAST(:y AS float8[])) AS t(c, x, y)"""),
            {"label": label, "c": list(contact_ids), "x": [p[0] for p in points], "y": [p[1] for p in points]})

    def group(self, name: str, members: Sequence[int] = (), *, criterion: dict[str, Any] | None = None) -> Group:
        group = Group(name=name, kind=GroupKind.DYNAMIC if criterion else GroupKind.STATIC, criterion=criterion)
        self.db.add(group)
        self.db.flush()
        self.db.add_all([GroupMember(group_id=group.id, contact_id=c) for c in members])
        self.db.flush()
        return group

    def alert(self, mode: AlertMode = AlertMode.LIVE) -> Alert:
        n = next(_numbers)
        alert = Alert(reference=f"A-GEO-{n:06d}", reply_code=f"{n % 10000:04d}", mode=mode,
                      sender_name="SIRENA", texts={"es": "Alerta"}, target={})
        self.db.add(alert)
        self.db.flush()
        return alert

    def deliveries(self, alert_id: int) -> list[tuple[int, str, str]]:
        return [tuple(r) for r in self.db.execute(text(
            "SELECT contact_id, msisdn, language FROM deliveries WHERE alert_id = :a ORDER BY contact_id"),
            {"a": alert_id})]


def _json(value: object) -> str:
    import json

    return json.dumps(value)


@pytest.fixture
def directory(db: Session) -> Directory:
    return Directory(db)
