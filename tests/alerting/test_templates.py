"""Approved message templates: the two-person rule on the library, and the one-approver rule on alerts."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select, text

from alerting.alerts import drafts, lifecycle, template_use
from alerting.alerts import templates as library
from alerting.base import runtime
from alerting.base.errors import InvalidInput, InvalidTransition, Refused, TwoPersonRuleViolated
from alerting.base.models import AlertMode, AlertState, MessageTemplate, Priority, TemplateState
from alerting.base.sms_text.rendering import check_placeholders
from tests.factories import actor_for, add_member

SPEC = library.TemplateSpec(
    name="cierre-ruta", titles={"es": "Cierre de ruta", "en": "Road closure"},
    texts={"es": "Ruta {ruta} cortada hasta las {hora}. Use desvíos. Responda ACK {codigo}.",
           "en": "Road {ruta} closed until {hora}. Use detours. Reply ACK {codigo}."},
    placeholders=[{"name": "ruta", "default": None}, {"name": "hora", "default": "nuevo aviso"}],
    priority_hint="flash", mode_hint="live")


@pytest.fixture
def crew(db, factories):
    factories.SenderFactory(name="SIRENA-SC")
    group = factories.GroupFactory(name="vecinos")
    for _ in range(3):
        add_member(db, group, factories.ContactFactory())
    make = factories.OperatorFactory
    return {"author": actor_for(make(roles=["composer"])), "writer2": actor_for(make(roles=["composer", "approver"])),
            "ap1": actor_for(make(roles=["approver"])), "ap2": actor_for(make(roles=["approver"])),
            "ap3": actor_for(make(roles=["approver"])), "composer": actor_for(make(roles=["composer"])),
            "auditor": actor_for(make(roles=["auditor"]))}


def _approved(db, crew, spec: library.TemplateSpec = SPEC) -> MessageTemplate:
    template = library.create_template(db, spec, crew["author"])
    library.submit_template(db, template.id, crew["author"])
    for who in ("ap1", "ap2"):
        library.approve_template(db, template.id, crew[who], seen_hash=template.approval_hash)
    assert template.state is TemplateState.APPROVED
    return template


def _events(db, action: str) -> list[tuple]:
    return db.execute(text("SELECT actor_name, outcome, payload FROM audit.events WHERE action = :a ORDER BY id"),
                      {"a": action}).all()


def test_a_template_needs_two_approvers_who_did_not_write_it(db, crew):
    template = library.create_template(db, SPEC, crew["author"])
    assert template.state is TemplateState.DRAFT and template.version == 1
    with pytest.raises(InvalidTransition, match="not pending approval"):
        library.approve_template(db, template.id, crew["ap1"], seen_hash="0" * 64)
    library.submit_template(db, "cierre-ruta", crew["author"])
    seen = template.approval_hash
    assert seen == library.content_hash(library.spec_of(template))
    author_as_approver = replace(crew["author"], roles=frozenset({"approver"}))
    with pytest.raises(TwoPersonRuleViolated, match="an author cannot approve it"):
        library.approve_template(db, template.id, author_as_approver, seen_hash=seen)
    with pytest.raises(Refused, match="needs the approver role"):
        library.approve_template(db, template.id, crew["composer"], seen_hash=seen)
    with pytest.raises(InvalidInput, match="seen_hash"):
        library.approve_template(db, template.id, crew["ap1"], seen_hash=None)
    with pytest.raises(Refused, match="changed since it was shown"):
        library.approve_template(db, template.id, crew["ap1"], seen_hash="f" * 64)
    library.approve_template(db, template.id, crew["ap1"], seen_hash=seen)
    assert template.state is TemplateState.PENDING_APPROVAL  # one is not enough, whatever the priority hint
    with pytest.raises(TwoPersonRuleViolated, match="already approved"):
        library.approve_template(db, template.id, crew["ap1"], seen_hash=seen)
    library.approve_template(db, template.id, crew["ap2"], seen_hash=seen)
    assert template.state is TemplateState.APPROVED and template.approved_at is not None
    assert [p["approvals"] for _, _, p in _events(db, "template.approved")] == [1, 2]
    assert [a for a, _, _ in _events(db, "template.created")] == [crew["author"].name]


def test_an_editor_becomes_an_author_and_any_edit_sends_it_back_to_draft(db, crew):
    template = _approved(db, crew)
    edited = library.TemplateSpec(**{**SPEC.__dict__, "texts": {**SPEC.texts, "es": SPEC.texts["es"] + " Gracias."}})
    library.update_template(db, template.id, edited, crew["writer2"])
    assert (template.state, template.version, template.approval_hash) == (TemplateState.DRAFT, 2, None)
    assert library.approvals_of(db, template) == []  # the approvals covered version 1's words
    library.submit_template(db, template.id, crew["author"])
    with pytest.raises(TwoPersonRuleViolated):  # writer2 edited it: never its approver
        library.approve_template(db, template.id, crew["writer2"], seen_hash=template.approval_hash)
    again = library.update_template(db, template.id, edited, crew["author"])  # the same words: nothing new
    assert again.version == 2 and again.state is TemplateState.PENDING_APPROVAL
    renamed = library.TemplateSpec(**{**edited.__dict__, "name": "corte-ruta"})
    library.update_template(db, template.id, renamed, crew["author"])  # the name is covered too
    assert template.state is TemplateState.DRAFT and template.version == 3
    shown = library.history(db, template.id)
    assert [h.version for h in shown] == [3, 2, 1]
    assert set(shown[-1].approvers) == {crew["ap1"].name, crew["ap2"].name} and shown[0].approvers == []
    assert shown[0].written_by == crew["author"].name and shown[1].written_by == crew["writer2"].name
    assert _events(db, "template.edited")[0][2]["before"]["texts"]["es"] == SPEC.texts["es"]


def test_reject_and_retire_need_a_reason_and_are_audited(db, crew):
    template = library.create_template(db, SPEC, crew["author"])
    library.submit_template(db, template.id, crew["author"])
    with pytest.raises(InvalidInput, match="reason"):
        library.reject_template(db, template.id, crew["ap1"], " ")
    library.reject_template(db, template.id, crew["ap1"], "the English is wrong")
    assert template.state is TemplateState.REJECTED and template.reason == "the English is wrong"
    library.submit_template(db, template.id, crew["author"])  # resubmitted as it was
    library.retire_template(db, template.id, crew["author"], "replaced by the national one")
    assert template.state is TemplateState.RETIRED
    with pytest.raises(InvalidInput, match="only an approved template"):
        template_use.use_template(db, template.id, {"ruta": "5"})
    assert [r for _, _, r in _events(db, "template.rejected")] and _events(db, "template.retired")


def test_a_template_is_checked_like_an_alert_text(db, crew):
    bad = library.TemplateSpec(name="Mal Nombre", titles={"fr": "x"}, texts={"es": "Vecino {barrio}: {lugar|x}"},
                               placeholders=[{"name": "lugar", "default": None}, {"name": "codigo"},
                                             {"name": "nunca"}], priority_hint="urgent", mode_hint="drill")
    with pytest.raises(InvalidInput) as caught:
        library.create_template(db, bad, crew["author"])
    fields = caught.value.details["fields"]
    assert set(fields) >= {"name", "titles.fr", "placeholders[1].name", "priority_hint", "mode_hint"}
    fixed = library.TemplateSpec(name="barrio", titles={"es": "Barrio"}, texts={"es": "Vecino de {barrio}: {lugar|x}"},
                                 placeholders=[{"name": "lugar"}])
    with pytest.raises(InvalidInput) as caught:
        library.create_template(db, fixed, crew["author"])
    assert "its default goes in the declaration" in caught.value.details["fields"]["texts.es"]
    contact_field = library.TemplateSpec(name="barrio", titles={"es": "Barrio"}, texts={"es": "Vecino de {barrio}"})
    with pytest.raises(InvalidInput) as caught:
        library.create_template(db, contact_field, crew["author"])
    assert "placeholder {barrio} needs a default" in caught.value.details["fields"]["texts.es"]
    library.create_template(db, SPEC, crew["author"])
    with pytest.raises(InvalidInput) as caught:
        library.create_template(db, SPEC, crew["composer"])
    assert caught.value.details["fields"] == {"name": 'a template named "cierre-ruta" exists already'}
    with pytest.raises(Refused, match="needs the admin or composer role"):
        library.create_template(db, library.TemplateSpec(**{**SPEC.__dict__, "name": "otra"}), crew["auditor"])


def test_the_six_former_templates_are_seeded_waiting_for_two_approvers(db, crew):
    seeded = {t.name: t for t in library.list_templates(db)}
    assert set(seeded) >= {"evacuate", "wildfire", "callout", "water", "road", "verify"}
    for name in ("evacuate", "wildfire", "callout", "water", "road", "verify"):
        template = seeded[name]
        assert template.state is TemplateState.PENDING_APPROVAL and set(template.texts) == {"es", "en"}
        assert template.approval_hash == library.content_hash(library.spec_of(template))  # the migration's hash
        check_placeholders(template.texts)
    assert seeded["evacuate"].titles == {"es": "Evacuación", "en": "Evacuation"}
    library.approve_template(db, "water", crew["ap1"], seen_hash=seeded["water"].approval_hash)
    library.approve_template(db, "water", crew["ap2"], seen_hash=seeded["water"].approval_hash)
    assert seeded["water"].state is TemplateState.APPROVED


def _compose(db, who, use: template_use.TemplateUse, *, texts=None, priority=Priority.FLASH):
    draft = drafts.AlertDraft(texts=texts or use.texts, mode=AlertMode.LIVE, sender_name="SIRENA-SC",
                                 priority=priority, title=use.title(), target={"groups": ["vecinos"]},
                                 template_id=use.template_id, template_version=use.version,
                                 template_values=use.values)
    alert = lifecycle.compose(db, draft, who)
    return lifecycle.submit(db, alert.id, who)


def test_an_unchanged_flash_alert_from_an_approved_template_needs_one_approver(db, crew):
    _approved(db, crew)
    use = template_use.use_template(db, "cierre-ruta", {"ruta": "68"})
    assert use.texts["es"] == "Ruta 68 cortada hasta las nuevo aviso. Use desvíos. Responda ACK {codigo}."
    assert use.values == {"ruta": "68", "hora": "nuevo aviso"}
    alert = _compose(db, crew["composer"], use)
    assert (alert.template_version, alert.template_values) == (1, {"ruta": "68", "hora": "nuevo aviso"})
    assert alert.required_approvals == 1  # a flash alert, which would need two
    with pytest.raises(TwoPersonRuleViolated):  # one approver, never zero: its composer is not it
        both = replace(crew["composer"], roles=frozenset({"composer", "approver"}))
        lifecycle.approve(db, alert.id, both, seen_hash=alert.approval_hash)
    lifecycle.approve(db, alert.id, crew["ap3"], seen_hash=alert.approval_hash)
    assert alert.state in (AlertState.APPROVED, AlertState.SENDING)
    checked = _events(db, "alert.template_checked")
    assert [p["unchanged"] for _, _, p in checked] == [True, True]  # at submission and at approval


def test_a_changed_text_falls_back_to_the_priority_rule(db, crew):
    _approved(db, crew)
    use = template_use.use_template(db, "cierre-ruta", {"ruta": "68", "hora": "18:00"})
    changed = {**use.texts, "es": use.texts["es"].replace("Use desvíos", "Evacúe")}
    alert = _compose(db, crew["composer"], use, texts=changed)
    assert alert.required_approvals == 2 and alert.template_id is not None
    lifecycle.approve(db, alert.id, crew["ap1"], seen_hash=alert.approval_hash)
    assert alert.state is AlertState.PENDING_APPROVAL  # a second approver is needed
    reason = _events(db, "alert.template_checked")[-1][2]["reason"]
    assert reason == "its text in es differs from the template's"
    dropped = _compose(db, crew["composer"], use, texts={"es": use.texts["es"]})  # a language left out
    assert dropped.required_approvals == 2


def test_a_template_edited_after_the_alert_was_submitted_voids_the_rule_at_approval(db, crew):
    template = _approved(db, crew)
    use = template_use.use_template(db, "cierre-ruta", {"ruta": "5"})
    alert = _compose(db, crew["composer"], use)
    assert alert.required_approvals == 1
    library.update_template(db, template.id, library.TemplateSpec(**{**SPEC.__dict__, "titles": {"es": "Ruta"}}),
                            crew["author"])
    lifecycle.approve(db, alert.id, crew["ap1"], seen_hash=alert.approval_hash)
    assert alert.state is AlertState.PENDING_APPROVAL and alert.required_approvals == 2
    assert "no longer approved" in _events(db, "alert.template_checked")[-1][2]["reason"]


def test_values_are_checked_by_name(db, crew):
    _approved(db, crew)
    with pytest.raises(InvalidInput) as caught:
        template_use.use_template(db, "cierre-ruta", {"hora": "{codigo}", "calle": "x"})
    assert set(caught.value.details["fields"]) == {"template_values.ruta", "template_values.hora",
                                                   "template_values.calle"}
    with pytest.raises(InvalidInput, match="draft"):
        template_use.use_template(db, library.create_template(
            db, library.TemplateSpec(**{**SPEC.__dict__, "name": "borrador"}), crew["author"]).id, {"ruta": "1"})
    assert db.scalar(select(MessageTemplate.state).where(MessageTemplate.name == "borrador")) is TemplateState.DRAFT


def test_a_template_needs_as_many_approvers_as_a_flash_alert(db, crew, settings, monkeypatch):
    monkeypatch.setattr(runtime, "_current", [replace(runtime.current(), settings=replace(
        settings, approvals=(("flash", 3),)))])
    template = library.create_template(db, SPEC, crew["author"])
    library.submit_template(db, template.id, crew["author"])
    assert template.required_approvals == 3
    for who in ("ap1", "ap2"):
        library.approve_template(db, template.id, crew[who], seen_hash=template.approval_hash)
    assert template.state is TemplateState.PENDING_APPROVAL
    library.approve_template(db, template.id, crew["ap3"], seen_hash=template.approval_hash)
    assert template.state is TemplateState.APPROVED
