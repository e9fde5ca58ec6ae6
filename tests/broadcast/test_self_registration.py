"""Self-registration by SMS over real SMPP: a handset texts ALTA CENTRO to the short code, gets the
confirmation question, answers SI and is then reached by alerts to the zone; expiry, refusals, the
hourly limit, STOP, a contact who registers again, a shared code's keyword, English."""

from __future__ import annotations

from uuid import uuid4

import pytest
from shapely.geometry import box
from sqlalchemy import text

from alerting.alerts import lifecycle
from alerting.alerts.drafts import AlertDraft
from alerting.base.db import transaction
from alerting.base.errors import ConfigError
from alerting.base.models import AlertMode, Operator, Priority
from alerting.base.sms_text.vocabulary import DEFAULT, Vocabulary
from alerting.directory import registration
from alerting.directory.registration_keywords import load_policy, publish_keyword, set_policy
from alerting.directory.registration_records import list_registrations
from alerting.interfaces.scheduler import periodic_tasks
from audit.actor import Actor
from broadcast import followups, jobs
from geo.targeting import TargetSpec, preview
from geo.zones import save_zone
from tests.broadcast.inbound_rig import add_group, inbound_rig, process_all, seed_alert, send
from tests.factories import actor_for

ADMIN = Actor.system("test-admin")
CENTRO = box(-70.67, -33.46, -70.63, -33.43)
INSIDE_CENTRO = (-70.66, -33.45)


def open_registration(*, per_hour: int = 3, confirm_within_s: int = 86400, group: str | None = None) -> None:
    """Zone Centro published as CENTRO (and `group` as BRIGADA), registration on."""
    with transaction() as s:
        save_zone(s, "Centro", CENTRO, "geojson")
        publish_keyword(s, "Centro", zone="Centro", description="Casco historico", actor=ADMIN)
        if group is not None:
            publish_keyword(s, "brigada", group=group, actor=ADMIN)
        set_policy(s, enabled=True, per_hour=per_hour, confirm_within_s=confirm_within_s, actor=ADMIN)


def _mo_count() -> int:
    with transaction() as s:
        return int(s.execute(text("SELECT count(*) FROM inbound_messages WHERE kind = 'mo'")).scalar_one())


def texts_in(sim, number: str, body: str, *, to: str = "4242") -> None:  # type: ignore[no-untyped-def]
    """A handset texts `body`; the inbound row is read as a worker would, and the answers are sent
    by the follow-up job's own function, through the rig's gateway (run_jobs would do the same, but
    an RQ burst worker's teardown waits up to 60 s for its pub/sub thread with redis-py 8.2)."""
    before = _mo_count()
    sim.send_mo("alpha", number.lstrip("+"), to, body)
    assert sim.wait_for(lambda: _mo_count() > before, 10), "the MO never reached the gateway"
    process_all()
    followups.send_followups()


def sms_to(sim, number: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [m["text"] for m in sim.messages(dest=number.lstrip("+"))]


def states(number: str) -> list[str]:
    with transaction() as s:
        return list(s.execute(text("SELECT state FROM registrations WHERE msisdn = :n ORDER BY id"),
                              {"n": number}).scalars())


def audited(prefix: str = "registration.") -> list[tuple[str, str]]:
    with transaction() as s:
        return [tuple(r) for r in s.execute(text(
            "SELECT action, outcome FROM audit.events WHERE action LIKE :p ORDER BY id"), {"p": prefix + "%"})]


def contact(number: str) -> dict | None:
    with transaction() as s:
        row = s.execute(text("SELECT * FROM contacts WHERE msisdn = :n"), {"n": number}).mappings().first()
    return dict(row) if row else None


def _operator(*roles: str) -> Actor:
    with transaction() as s:
        op = Operator(username=f"op-{uuid4().hex[:8]}", password_hash="x", roles=list(roles))
        s.add(op)
        s.flush()
        return actor_for(op)


def alert_to_centro() -> int:
    """A live alert to zone Centro, composed, submitted and approved by two operators."""
    composer, approver = _operator("composer"), _operator("approver")
    with transaction() as s:
        alert = lifecycle.compose(s, AlertDraft(texts={"es": "Evacuar el centro"}, mode=AlertMode.LIVE,
                                            sender_name="ALPHA-SC", priority=Priority.HIGH,
                                            target={"zones": ["Centro"]}), composer)
        lifecycle.submit(s, alert.id, composer)
    with transaction() as s:
        alert = lifecycle.approve(s, alert.id, approver, seen_hash=alert.approval_hash)
        return alert.id


def test_alta_centro_becomes_a_contact_on_si_and_an_alert_to_the_zone_reaches_it_once(committed_db, redis_db):
    number, located = "+56979700001", "+56979700002"
    open_registration()
    with transaction() as s:
        s.execute(text("INSERT INTO contacts (msisdn, name, language, attributes) VALUES (:n, 'Vecina', 'es', '{}')"),
                  {"n": located})
        s.execute(text("INSERT INTO contact_locations (contact_id, label, geom) SELECT id, 'home', "
                       "ST_SetSRID(ST_MakePoint(:x, :y), 4326) FROM contacts WHERE msisdn = :n"),
                  {"n": located, "x": INSIDE_CENTRO[0], "y": INSIDE_CENTRO[1]})
    with inbound_rig(live=("alpha",)) as (sim, gateway):
        texts_in(sim, number, "Alta centro")
        [question] = sms_to(sim, number)
        assert question.startswith("Sirena: para recibir alertas de emergencia de CENTRO en este numero responda SI")
        assert states(number) == ["pending"] and contact(number) is None  # pending: not a contact, reached by nothing
        with transaction() as s:
            assert preview(s, TargetSpec(zones=["Centro"])).total == 1

        texts_in(sim, number, "SI")
        assert sms_to(sim, number)[-1].startswith("Sirena: registro confirmado para CENTRO.")
        assert states(number) == ["active"]
        registered = contact(number)
        assert (registered["language"], registered["verification_state"], registered["attributes"]) == (
            "es", "verified", {"source": "sms"})
        with transaction() as s:
            shown = preview(s, TargetSpec(zones=["Centro"]))
        assert (shown.total, shown.by_zone[0]["subscribed"]) == (2, 1)

        alert_id = alert_to_centro()
        jobs.fan_out(alert_id)  # the jobs a worker would run, through the rig's gateway
        send(gateway, alert_id)
        assert sms_to(sim, number)[-1] == sms_to(sim, located)[-1] == "Evacuar el centro"
        assert sms_to(sim, number).count("Evacuar el centro") == 1
    with transaction() as s:
        reached = dict(s.execute(text("SELECT msisdn, count(*) FROM deliveries WHERE alert_id = :a GROUP BY 1"),
                                 {"a": alert_id}).all())
        sent_back = s.execute(text("SELECT kind, state FROM followups WHERE msisdn = :n ORDER BY id"),
                              {"n": number}).all()
    assert reached == {number: 1, located: 1}
    assert [(kind, state in ("submitted", "delivered")) for kind, state in sent_back] == [
        ("registration_request", True), ("registration_answer", True)]
    assert audited() == [("registration.keyword_published", "done"), ("registration.policy_changed", "done"),
                         ("registration.requested", "done"), ("registration.confirmed", "done")]


def test_a_request_not_confirmed_in_time_expires_and_a_late_si_is_told_to_ask_again(committed_db, redis_db):
    quiet, late = "+56979710001", "+56979710002"
    open_registration(confirm_within_s=60)
    with inbound_rig() as (sim, _gateway):
        texts_in(sim, quiet, "ALTA")
        texts_in(sim, late, "ALTA CENTRO")
        assert "antes de 1 min" in sms_to(sim, quiet)[0]
        with transaction() as s:  # two minutes later
            s.execute(text("UPDATE registrations SET expires_at = now() - interval '1 minute'"))
        assert states(quiet) == ["pending"]
        with transaction() as s:
            assert {r["state"] for r in list_registrations(s)[0]} == {"expired"}  # shown so before the pass

        texts_in(sim, late, "si")  # answered late: expired now, and told
        assert states(late) == ["expired"]
        assert sms_to(sim, late)[-1] == "Sirena: su solicitud vencio. Envie ALTA de nuevo para registrarse."
        assert contact(late) is None

        dict(periodic_tasks())["registrations"](None)  # the scheduler's pass
        assert states(quiet) == ["expired"]
        texts_in(sim, quiet, "SI")  # no pending request any more: an unmatched reply
        assert len(sms_to(sim, quiet)) == 1  # the question only: expiry sends nothing
    with transaction() as s:
        reply = s.execute(text("SELECT unmatched_reason FROM replies WHERE msisdn = :n"), {"n": quiet}).scalar_one()
    assert reply == "unmatched_sender"
    assert [a for a, _ in audited()].count("registration.expired") == 2


def test_an_unpublished_keyword_is_refused_with_the_published_ones_and_ignored_when_registration_is_off(
        committed_db, redis_db):
    typo, stranger = "+56979720001", "+56979720002"
    add_group("brigadistas", [])
    open_registration(group="brigadistas")
    with inbound_rig() as (sim, _gateway):
        texts_in(sim, typo, "ALTA CENTRA")
        assert sms_to(sim, typo) == ["Sirena: CENTRA no es una zona ni un grupo disponible. "
                                     "Envie ALTA y uno de: BRIGADA, CENTRO"]
        with transaction() as s:
            set_policy(s, enabled=False, actor=ADMIN)
        texts_in(sim, stranger, "ALTA CENTRO")
        texts_in(sim, stranger, "SI")
        assert sms_to(sim, stranger) == []  # a number that only asked while it was off gets nothing
    assert states(typo) == ["refused"] and states(stranger) == ["refused"]
    assert contact(typo) is None and contact(stranger) is None
    refusals = [a for a in audited() if a[0] == "registration.refused"]
    assert refusals == [("registration.refused", "refused")] * 2
    with transaction() as s:
        reasons = list(s.execute(text("SELECT reason FROM registrations ORDER BY id")).scalars())
    assert reasons == ['keyword "CENTRA" is not published', "registration is off"]


def test_requests_over_the_hourly_limit_are_stored_and_audited_but_never_answered(committed_db, redis_db):
    number = "+56979730001"
    open_registration(per_hour=2)
    with inbound_rig() as (sim, _gateway):
        for body in ("ALTA", "ALTA CENTRO", "ALTA CENTRO", "ALTA", "ALTA XYZ"):
            texts_in(sim, number, body)
        assert len(sms_to(sim, number)) == 2  # the first two questions; nothing after
        texts_in(sim, number, "SI")  # the pending one still confirms
        assert sms_to(sim, number)[-1].startswith("Sirena: registro confirmado para CENTRO.")
    assert states(number) == ["replaced", "active", "limited", "limited", "limited"]
    assert [a for a in audited() if a[0] == "registration.rate_limited"] == [
        ("registration.rate_limited", "refused")] * 3


def test_stop_keeps_working_after_registration_and_withdraws_a_pending_request(committed_db, redis_db):
    member, hesitant, undecided = "+56979740001", "+56979740002", "+56979740003"
    open_registration()
    with inbound_rig() as (sim, _gateway):
        texts_in(sim, member, "ALTA CENTRO")
        texts_in(sim, member, "si")
        texts_in(sim, member, "BAJA")  # a contact now: the usual opt-out
        assert "no recibira mas mensajes" in sms_to(sim, member)[-1]
        assert contact(member)["opted_out_at"] is not None
        with transaction() as s:
            assert preview(s, TargetSpec(zones=["Centro"])).opted_out_excluded == 1

        texts_in(sim, hesitant, "ALTA")
        texts_in(sim, hesitant, "STOP")
        assert sms_to(sim, hesitant)[-1].startswith("Sirena: solicitud cancelada; no recibira mensajes")
        texts_in(sim, undecided, "ALTA")
        texts_in(sim, undecided, "no")
        assert sms_to(sim, undecided)[-1] == "Sirena: no se completo el registro. Puede pedirlo de nuevo con ALTA."
    assert states(hesitant) == ["withdrawn"] and states(undecided) == ["withdrawn"]
    assert contact(hesitant) is None and contact(undecided) is None


def test_a_contact_who_registers_again_is_answered_and_added_to_the_group_named(committed_db, redis_db):
    brigadista, opted_out = "+56979750001", "+56979750002"
    add_group("brigadistas", [])
    open_registration(group="brigadistas")
    with inbound_rig() as (sim, gateway):
        alert_id = seed_alert([brigadista, opted_out])  # both contacts already
        send(gateway, alert_id)
        with transaction() as s:
            s.execute(text("UPDATE contacts SET opted_out_at = now() WHERE msisdn = :n"), {"n": opted_out})
        texts_in(sim, brigadista, "ALTA BRIGADA")
        assert sms_to(sim, brigadista)[-1] == ("Sirena: este numero ya esta registrado. Tambien recibira las "
                                               "alertas de BRIGADA. Para salir responda BAJA.")
        texts_in(sim, opted_out, "join centro")
        assert sms_to(sim, opted_out)[-1].startswith("Sirena: this number is already registered. You will also get")
    with transaction() as s:
        members = list(s.execute(text("SELECT c.msisdn FROM group_members m JOIN groups g ON g.id = m.group_id "
                                      "JOIN contacts c ON c.id = m.contact_id WHERE g.name = 'brigadistas'")).scalars())
        subscribed = list(s.execute(text("SELECT c.msisdn FROM zone_subscriptions z JOIN contacts c "
                                         "ON c.id = z.contact_id")).scalars())
    assert members == [brigadista] and subscribed == [opted_out]
    assert contact(opted_out)["opted_out_at"] is None  # asking to register is asking to be sent to again
    assert states(brigadista) == ["existing"] and states(opted_out) == ["existing"]
    assert ("contact.opted_in", "done") in audited("contact.")


def test_alta_alone_from_a_contact_is_still_an_opt_in(committed_db, redis_db):
    number = "+56979760001"
    open_registration()
    with inbound_rig() as (sim, gateway):
        alert_id = seed_alert([number])
        send(gateway, alert_id)
        texts_in(sim, number, "BAJA")
        texts_in(sim, number, "ALTA")
        assert "BAJA" in sms_to(sim, number)[-1] and "volvera a recibir" in sms_to(sim, number)[-1]
    assert states(number) == [] and contact(number)["opted_out_at"] is None


@pytest.mark.parametrize("body,answer", [("BOMBEROS JOIN CENTRO", "bomberos yes"), ("Bomberos alta", "BOMBEROS SI")])
def test_a_shared_code_keyword_registers_and_every_instruction_carries_it(committed_db, redis_db,
                                                                          body, answer):
    number = "+56979770001"
    open_registration()
    with inbound_rig() as (sim, _gateway):
        texts_in(sim, number, body, to="5555")
        [question] = sim.messages(dest=number.lstrip("+"))
        assert question["source"] == "5555"
        assert (" reply BOMBEROS YES within 24 h" in question["text"]) if "JOIN" in body else (
            " responda BOMBEROS SI antes de 24 h" in question["text"])
        texts_in(sim, number, "SI", to="5555")  # without the keyword: not ours on a shared code
        assert states(number) == ["pending"]
        texts_in(sim, number, answer, to="5555")
        welcome = sms_to(sim, number)[-1]
    assert states(number) == ["active"]
    language = "en" if "JOIN" in body else "es"
    assert contact(number)["language"] == language
    assert welcome.endswith("Reply BOMBEROS STOP to leave." if language == "en"
                            else "Para salir responda BOMBEROS BAJA.")


def test_one_pending_request_per_number_and_the_time_limit_comes_from_the_policy(committed_db):
    open_registration(confirm_within_s=3600)
    with transaction() as s:
        policy = load_policy(s)
        first, _ = registration.request_registration(
            s, registration.Request("+56979780001", "alta", "es", None, "ALPHA-SC"), policy)
        second, answer = registration.request_registration(
            s, registration.Request("+56979780001", "alta", "es", "centro", "ALPHA-SC"), policy)
        assert (first.state.value, second.state.value) == ("replaced", "pending")
        assert round((second.expires_at - second.requested_at).total_seconds()) == 3600
        assert answer is not None and "antes de 1 h" in answer.text


@pytest.mark.parametrize("body,keywords,read", [
    ("ALTA CENTRO", (), ("alta", "es", "centro", None)),
    ("¡Alta, Centro!", (), ("alta", "es", "centro", None)),
    ("join", (), ("join", "en", None, None)),
    ("Registro", (), ("registro", "es", None, None)),
    ("vecinos START norte", ("VECINOS",), ("start", "en", "norte", "VECINOS")),
    ("alta", ("VECINOS",), None),  # a shared code's text must start with its keyword
    ("alta la marea en el centro", (), None),  # a sentence is not a request
    ("si", (), None),
    ("altaa", (), None),  # registration words are never guessed from typos
])
def test_what_counts_as_a_registration_text(body, keywords, read):
    got = DEFAULT.read_registration(body, keywords=keywords)
    assert (None if got is None else (got.word, got.language, got.target, got.keyword)) == read


def test_registration_words_are_configured_per_language_and_never_clash_with_replies():
    vocabulary = Vocabulary.from_toml('ack = ["vale"]\n[register]\nes = ["apuntarme"]\nen = ["enrol"]\n')
    assert vocabulary.read_registration("Apúntarme norte").language == "es"
    assert vocabulary.read_registration("enrol").language == "en"
    with pytest.raises(ConfigError, match='"si" already means ack'):
        Vocabulary.from_toml('[register]\nes = ["si"]\n')
    with pytest.raises(ConfigError, match="unknown language"):
        Vocabulary.from_toml('[register]\nfr = ["inscrire"]\n')
    with pytest.raises(ConfigError, match='"join" already asks to register'):
        Vocabulary.from_toml('ack = ["join"]\n')
