"""Changing and deleting groups and their members: the rules every interface shares, and their audit."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from alerting.alerts import lifecycle
from alerting.base.errors import InvalidInput, NotFound, Refused
from alerting.base.models import AlertMode, AlertState, Group, GroupKind
from alerting.base.models.intake import Schedule
from alerting.directory.contacts import (
    add_members,
    create_group,
    delete_group,
    member_counts,
    read_number_lines,
    remove_members,
    update_group,
)
from audit.actor import Actor

ACTOR = Actor(kind="operator", name="admin", roles=frozenset({"admin"}), interface="console")


def _events(db: Session, action: str) -> list[dict]:
    return list(db.scalars(text("SELECT payload FROM audit.events WHERE action = :a ORDER BY id"), {"a": action}))


@pytest.fixture
def brigadas(db, factories):  # type: ignore[no-untyped-def]
    group = create_group(db, "brigadas", drill_allowed=True, actor=ACTOR)
    for number in ("+56961234567", "+56961234568", "+56961234569"):
        factories.add_member(db, group, factories.ContactFactory(msisdn=number))
    return group


def test_remove_members_takes_numbers_out_reports_non_members_and_is_audited(db, brigadas, factories):
    factories.ContactFactory(msisdn="+56961234570")  # in the directory, not in the group
    result = remove_members(db, "brigadas", ["9 6123 4567", "+56961234568", "+56961234570"], region="CL",
                            actor=ACTOR)
    assert (result.removed, result.not_members) == (2, ["+56961234570"])
    assert member_counts(db)[brigadas.id] == 1
    assert _events(db, "group.members_removed") == [
        {"group": "brigadas", "removed": 2, "asked": 3, "numbers": ["+56961234567", "+56961234568"]}]
    again = remove_members(db, "brigadas", ["+56961234567"], region="CL", actor=ACTOR)
    assert again.removed == 0 and len(_events(db, "group.members_removed")) == 1  # nothing changed, nothing audited


def test_remove_members_refuses_a_dynamic_group_and_a_malformed_number(db, brigadas):
    create_group(db, "rol", kind="dynamic", criterion={"attr": "rol", "eq": "x"}, actor=ACTOR)
    with pytest.raises(InvalidInput) as err:
        remove_members(db, "rol", ["+56961234567"], actor=ACTOR)
    assert err.value.details["fields"] == {"group": "is a dynamic group"}
    with pytest.raises(InvalidInput) as err:
        remove_members(db, "brigadas", ["123"], region="CL", actor=ACTOR)
    assert "phone" in err.value.details["fields"]
    with pytest.raises(NotFound):
        remove_members(db, "no-existe", ["+56961234567"], actor=ACTOR)


def test_update_group_changes_only_what_is_given_and_audits_before_and_after(db, factories):
    group = create_group(db, "rol", kind="dynamic", criterion={"attr": "rol", "eq": "brigadista"},
                         description="viejo", actor=ACTOR)
    update_group(db, "rol", {"criterion": {"attr": "rol", "in": ["brigadista", "jefe"]}, "description": " nuevo "},
                 actor=ACTOR)
    db.refresh(group)
    assert group.criterion == {"attr": "rol", "in": ["brigadista", "jefe"]} and group.description == "nuevo"
    assert group.drill_allowed is False
    assert _events(db, "group.updated") == [{
        "group": "rol", "before": {"criterion": {"attr": "rol", "eq": "brigadista"}, "description": "viejo"},
        "after": {"criterion": {"attr": "rol", "in": ["brigadista", "jefe"]}, "description": "nuevo"}}]
    update_group(db, "rol", {"description": "nuevo"}, actor=ACTOR)
    assert len(_events(db, "group.updated")) == 1  # no change, no event


def test_update_group_names_the_bad_field(db, brigadas):
    with pytest.raises(InvalidInput) as err:
        update_group(db, "brigadas", {"criterion": {"attr": "rol", "eq": "x"}}, actor=ACTOR)
    assert err.value.details["fields"] == {"criterion": "only for dynamic groups"}
    create_group(db, "rol", kind="dynamic", criterion={"attr": "rol", "eq": "x"}, actor=ACTOR)
    with pytest.raises(InvalidInput) as err:
        update_group(db, "rol", {"criterion": {"attr": "rol", "in": "no-es-lista"}}, actor=ACTOR)
    assert "criterion.in" in err.value.details["fields"]
    with pytest.raises(InvalidInput) as err:
        update_group(db, "rol", {"criterion": None}, actor=ACTOR)
    assert err.value.details["fields"] == {"criterion": "required"}
    with pytest.raises(InvalidInput) as err:
        update_group(db, "rol", {"kind": "static"}, actor=ACTOR)
    assert err.value.details["fields"] == {"kind": "cannot be changed"}


def test_unmarking_drills_is_refused_while_a_drill_still_aims_at_the_group(db, brigadas, factories):
    drill = factories.AlertFactory(mode=AlertMode.EXERCISE, state=AlertState.PENDING_APPROVAL,
                                   target={"groups": ["brigadas"]})
    factories.AlertFactory(mode=AlertMode.LIVE, state=AlertState.SENDING, target={"groups": ["brigadas"]})
    with pytest.raises(Refused) as err:
        update_group(db, "brigadas", {"drill_allowed": False}, actor=ACTOR)
    assert f"{drill.reference} (pending_approval)" in err.value.message
    assert "drill_allowed" in err.value.details["fields"]
    drill.state = AlertState.COMPLETED
    db.flush()
    assert update_group(db, "brigadas", {"drill_allowed": False}, actor=ACTOR).drill_allowed is False


def test_deleting_a_group_is_refused_naming_every_unfinished_alert_and_schedule_that_uses_it(db, brigadas,
                                                                                            factories):
    aimed = factories.AlertFactory(state=AlertState.DRAFT, target={"groups": ["otro", "brigadas"]})
    excluded = factories.AlertFactory(state=AlertState.SCHEDULED, target={"zones": ["Centro"],
                                                                          "exclude_groups": ["brigadas"]})
    escalates = factories.AlertFactory(state=AlertState.SENDING, escalation={"supervisors": "brigadas"})
    done = factories.AlertFactory(state=AlertState.COMPLETED, target={"groups": ["brigadas"]})
    operator = factories.OperatorFactory()
    db.add(Schedule(name="simulacro mensual", rule="0 10 1-7 * mon", timezone="America/Santiago",
                    template={"mode": "exercise", "target": {"groups": ["brigadas"]}}, policy="draft",
                    next_run_at=aimed.created_at, created_by_id=operator.id))
    db.flush()
    with pytest.raises(Refused) as err:
        delete_group(db, "brigadas", actor=ACTOR)
    message = err.value.message
    for alert in (aimed, excluded, escalates):
        assert alert.reference in message
    assert done.reference not in message and '"simulacro mensual"' in message
    assert err.value.details["fields"]["group"].startswith("still used by alerts")
    assert db.scalar(select(Group.id).where(Group.name == "brigadas")) == brigadas.id


def test_deleting_an_unused_group_removes_it_and_its_memberships_not_its_contacts(db, brigadas, factories):
    factories.AlertFactory(state=AlertState.CANCELLED, target={"groups": ["brigadas"]})  # finished: history only
    assert delete_group(db, "brigadas", actor=ACTOR) == 3
    assert db.scalar(select(Group).where(Group.name == "brigadas")) is None
    assert db.scalar(text("SELECT count(*) FROM group_members WHERE group_id = :g"), {"g": brigadas.id}) == 0
    assert db.scalar(text("SELECT count(*) FROM contacts WHERE msisdn LIKE '+5696123456%'")) == 3
    assert _events(db, "group.deleted") == [{"name": "brigadas", "kind": "static", "criterion": None,
                                             "drill_allowed": True, "description": "", "members": 3}]
    with pytest.raises(NotFound):
        delete_group(db, "brigadas", actor=ACTOR)


def test_pasted_numbers_are_read_per_line_and_bad_lines_are_named_by_number():
    pasted = "+56 9 6123 4567\n\n# brigada norte\n961234568, 961234569\n123\n9 6123 4567\nhola\n"
    with pytest.raises(InvalidInput) as err:
        read_number_lines(pasted, "CL")
    fields = err.value.details["fields"]
    assert set(fields) == {"numbers", "line 5", "line 7"}
    assert fields["line 5"] == '"123": too short' and fields["numbers"] == "2 bad line(s): line 5, line 7"
    good = read_number_lines(pasted.replace("123\n", "").replace("hola\n", ""), "CL")
    assert good == ["+56961234567", "+56961234568", "+56961234569"]
    with pytest.raises(InvalidInput):
        read_number_lines("\n  \n", "CL")


def test_added_and_removed_pasted_numbers_round_trip(db, factories):
    group = create_group(db, "salud", actor=ACTOR)
    for number in ("+56961234567", "+56961234568"):
        factories.ContactFactory(msisdn=number)
    numbers = read_number_lines("961234567\n961234568\n", "CL")
    assert add_members(db, group, numbers, actor=ACTOR) == 2
    assert remove_members(db, group, numbers[:1], actor=ACTOR).removed == 1
    assert member_counts(db)[group.id] == 1
    assert group.kind is GroupKind.STATIC


def test_a_group_deleted_while_an_alert_to_it_is_submitted_is_refused_not_lost(committed_db):
    """Compose and submit in one transaction (as the API, e-mail and schedules do) overlapping a
    delete: the delete waits for it, then sees the alert and refuses."""
    import threading

    from alerting.alerts.drafts import AlertDraft
    from alerting.base.db import transaction
    from alerting.base.models import Sender, SenderKind
    from tests.cluster import operators, seed_group

    seed_group(3, group="brigadas")
    with transaction() as session:
        session.add(Sender(name="SIRENA-SC", kind=SenderKind.SHORT, address="4242", active=True))
    composer, _ = operators("-race")
    outcome: list[object] = []

    def delete() -> None:
        try:
            with transaction() as other:
                outcome.append(delete_group(other, "brigadas", actor=ACTOR))
        except Exception as exc:  # the outcome is asserted below
            outcome.append(exc)

    with transaction() as session:
        alert = lifecycle.compose(session, AlertDraft(texts={"es": "Reunión"}, mode=AlertMode.LIVE,
                                                  sender_name="SIRENA-SC", target={"groups": ["brigadas"]}), composer)
        lifecycle.submit(session, alert.id, composer)  # resolves the target: 3 recipients
        deleter = threading.Thread(target=delete)
        deleter.start()
        deleter.join(timeout=1.0)
        assert deleter.is_alive(), "the delete went ahead while the alert naming the group was being submitted"
    deleter.join(timeout=20)
    assert len(outcome) == 1 and isinstance(outcome[0], Refused), outcome
    assert alert.reference in outcome[0].message
    with transaction() as session:
        assert session.scalar(select(Group.id).where(Group.name == "brigadas")) is not None
