"""Replies over real SMPP: vocabulary, matching, keywords, opt-out, HELP, polls, verification, live view."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from alerting.alerts import lifecycle
from alerting.base import runtime
from alerting.base.db import transaction
from alerting.base.sms_text.vocabulary import DEFAULT, DEFAULT_WORDS, Vocabulary
from broadcast import live, replies
from tests.broadcast.inbound_rig import inbound_rig, process_all, seed_alert, send, wait_inbound

SPANISH = {"ack": ["ACK", "ok", "Recibido", "enterado", "Sí", "si", "confirmo", "listo", "👍"],
           "no": ["NO", "negativo"], "help": ["AYUDA", "auxilio", "socorro"], "stop": ["BAJA", "alto"],
           "start": ["ALTA"]}
ENGLISH = {"ack": ["ack", "OK", "okay", "yes", "received", "roger", "👍🏽"], "no": ["no", "nope"],
           "help": ["HELP", "sos", "🆘"], "stop": ["STOP", "unsubscribe"], "start": ["START", "subscribe"]}


def reply_rows() -> dict[str, dict]:
    with transaction() as s:
        rows = s.execute(text("SELECT * FROM replies ORDER BY id")).mappings().all()
    return {r["msisdn"]: dict(r) for r in rows}


def mo(sim, number: str, body: str, to: str = "4242", carrier: str = "alpha") -> None:  # type: ignore[no-untyped-def]
    sim.send_mo(carrier, number.lstrip("+"), to, body)


@pytest.mark.parametrize("language,words", [("es", SPANISH), ("en", ENGLISH)])
def test_every_vocabulary_word_is_understood_over_smpp(committed_db, redis_db, language, words):
    cases = [(meaning, word) for meaning, ws in words.items() for word in ws]
    numbers = [f"+569780{i:05d}" for i in range(len(cases))]
    with inbound_rig() as (sim, gateway):
        alert_id = seed_alert(numbers, language=language)
        send(gateway, alert_id)
        for number, (_, word) in zip(numbers, cases, strict=True):
            mo(sim, number, word)
        wait_inbound(sim, 2 * len(cases))
        process_all()
    got = reply_rows()
    assert {n: got[n]["meaning"] for n in numbers} == {n: m for n, (m, _) in zip(numbers, cases, strict=True)}
    assert all(got[n]["alert_id"] == alert_id for n in numbers)


def test_every_default_word_maps_to_its_own_meaning():
    for meaning, words in DEFAULT_WORDS.items():
        for word in words:
            assert DEFAULT.read(word).meaning is meaning, word


@pytest.mark.parametrize("typo,meaning", [("recibdo", "ack"), ("ENTERDAO", "ack"), ("recivido", "ack"),
                                          ("auxlio", "help"), ("confrimo", "ack")])
def test_small_typos_are_tolerated(typo, meaning):
    assert DEFAULT.read(typo).meaning.value == meaning


@pytest.mark.parametrize("word", ["stpo", "bajaa", "altaa", "oj", "sii", "noo", "hola", "yess"])
def test_typos_are_never_guessed_for_short_words_or_opt_out(word):
    assert DEFAULT.read(word).meaning.value == "free_text"


def test_a_word_close_to_two_meanings_is_kept_as_free_text():
    vocabulary = Vocabulary.from_toml('ack = ["copiado"]\nno = ["copiada"]')
    assert vocabulary.read("copiadx").meaning.value == "free_text"
    assert vocabulary.read("copiado").meaning.value == "ack"


def test_help_anywhere_wins_and_a_long_text_is_not_an_opt_out():
    assert DEFAULT.read("estamos bien pero necesito ayuda").meaning.value == "help"
    assert DEFAULT.read("alto el fuego en el cerro, vengan").meaning.value == "free_text"


def test_two_open_alerts_are_told_apart_by_the_code_else_the_latest_wins(committed_db, redis_db):
    number, other = "+56979000001", "+56979000002"
    with inbound_rig() as (sim, gateway):
        older = seed_alert([number, other], reply_code="1111", sent_ago_s=600)
        newer = seed_alert([number, other], reply_code="2222")
        send(gateway, older), send(gateway, newer)
        mo(sim, number, "ACK 1111")
        mo(sim, other, "ok")
        wait_inbound(sim, 6)
        process_all()
    got = reply_rows()
    assert (got[number]["alert_id"], got[number]["meaning"]) == (older, "ack")
    assert (got[other]["alert_id"], got[other]["meaning"]) == (newer, "ack")


def test_shared_short_code_routes_by_keyword_first(committed_db, redis_db):
    a, b, c = "+56979100001", "+56979100002", "+56979100003"
    with inbound_rig() as (sim, gateway):
        bomberos = seed_alert([a, c], sender="BOMBEROS", reply_code="4821")
        salud = seed_alert([b, c], sender="SALUD", reply_code="5932")
        send(gateway, bomberos), send(gateway, salud)
        mo(sim, a, "BOMBEROS ACK 4821", to="5555")
        mo(sim, b, "salud sí", to="5555")
        mo(sim, c, "Bomberos no", to="5555")  # the later SALUD alert is not this keyword's
        wait_inbound(sim, 4 + 3)
        mo(sim, "+56979100009", "ACK 4821", to="5555")
        wait_inbound(sim, 8)
        process_all()
    got = reply_rows()
    assert (got[a]["alert_id"], got[a]["meaning"]) == (bomberos, "ack")
    assert (got[b]["alert_id"], got[b]["meaning"]) == (salud, "ack")
    assert (got[c]["alert_id"], got[c]["meaning"]) == (bomberos, "no")
    assert got["+56979100009"]["unmatched_reason"] == "unknown_keyword"


def test_a_shared_code_puts_its_keyword_in_the_sms_and_no_reply_is_lost_for_want_of_it(committed_db, redis_db):
    numbers = [f"+5697910100{i}" for i in range(5)]
    with inbound_rig() as (sim, gateway):
        alert_id = seed_alert(numbers, sender="BOMBEROS", reply_code="4821", ack_deadline_s=600,
                              texts={"es": "Incendio en el cerro. Responda ACK {codigo} o AYUDA {codigo}"})
        send(gateway, alert_id)
        on_air = {m["dest"]: m["text"] for m in sim.messages()}
        assert on_air[numbers[0].lstrip("+")] == ("Incendio en el cerro. Responda BOMBEROS ACK 4821 o "
                                                  "BOMBEROS AYUDA 4821")
        mo(sim, numbers[0], "BOMBEROS ACK 4821", to="5555")  # as the SMS says
        mo(sim, numbers[1], "ACK 4821", to="5555")  # without the keyword, quoting the code
        mo(sim, numbers[2], "AYUDA 4821 estoy atrapado", to="5555")
        mo(sim, numbers[3], "ok", to="5555")  # neither: the carrier would not even route it to us
        mo(sim, "+56979101099", "ACK 4821", to="5555")  # a code quoted by someone we never wrote to
        wait_inbound(sim, len(numbers) + 5)  # receipts and replies
        process_all()
    got = reply_rows()
    assert [(got[n]["alert_id"], got[n]["meaning"]) for n in numbers[:3]] == [
        (alert_id, "ack"), (alert_id, "ack"), (alert_id, "help")]
    assert got[numbers[3]]["unmatched_reason"] == "unknown_keyword"
    assert got["+56979101099"]["unmatched_reason"] == "unknown_keyword"
    with transaction() as s:
        counts = live.alert_reply_counts(s, alert_id)
    assert (counts["ack"], counts["help"]) == (2, 1)


def test_a_text_without_a_reply_instruction_gets_one_on_a_shared_code(committed_db, redis_db):
    with inbound_rig() as (sim, gateway):
        chased = seed_alert(["+56979102001"], sender="BOMBEROS", reply_code="5150", ack_deadline_s=600,
                            texts={"es": "Corte de agua hasta las 18:00", "en": "No water until 6 pm"})
        told = seed_alert(["+56979102002"], sender="BOMBEROS", reply_code="5151",
                          texts={"es": "Fin del corte de agua"})
        dedicated = seed_alert(["+56979102003"], sender="ALPHA-SC", reply_code="5152", ack_deadline_s=600,
                               texts={"es": "Corte de agua hasta las 18:00"})
        for alert_id in (chased, told, dedicated):
            send(gateway, alert_id)
        on_air = {m["dest"]: m["text"] for m in sim.messages()}
    assert on_air["56979102001"] == "Corte de agua hasta las 18:00. Responda BOMBEROS ACK 5150."
    assert on_air["56979102002"] == "Fin del corte de agua"  # not chased for answers: no instruction added
    assert on_air["56979102003"] == "Corte de agua hasta las 18:00"  # a dedicated code needs no keyword


def test_unmatched_replies_are_kept_with_their_reason(committed_db, redis_db):
    with inbound_rig() as (sim, gateway):
        alert_id = seed_alert(["+56979200001"])
        send(gateway, alert_id)
        seed_alert(["+56979200002"])  # a contact whose delivery never went out: nothing open for it
        mo(sim, "+56979200099", "ACK")
        mo(sim, "+56979200002", "ACK")
        mo(sim, "+56979200001", "¿Qué hago con los animales?")
        wait_inbound(sim, 4)
        process_all()
    got = reply_rows()
    assert got["+56979200099"]["unmatched_reason"] == "unmatched_sender"
    assert got["+56979200002"]["unmatched_reason"] == "no_open_alert"
    assert (got["+56979200001"]["meaning"], got["+56979200001"]["text"]) == ("free_text",
                                                                            "¿Qué hago con los animales?")
    with transaction() as s:
        outcomes = dict(s.execute(text("SELECT outcome, count(*) FROM inbound_messages WHERE kind = 'mo' "
                                       "GROUP BY 1")).all())
    assert outcomes == {"unmatched_sender": 1, "no_open_alert": 1, "matched": 1}


def test_stop_opts_out_with_a_confirmation_and_start_opts_back_in(committed_db, redis_db, run_jobs):
    number = "+56979300001"
    with inbound_rig() as (sim, gateway):
        alert_id = seed_alert([number])
        send(gateway, alert_id)
        mo(sim, number, "BAJA")
        wait_inbound(sim, 2)
        process_all()
        with transaction() as s:
            opted = s.execute(text("SELECT opted_out_at FROM contacts WHERE msisdn = :n"), {"n": number}).scalar()
        run_jobs()
        confirmation = sim.messages(dest=number.lstrip("+"))[-1]["text"]
        mo(sim, number, "ALTA")
        wait_inbound(sim, 4)
        process_all()
        run_jobs()
        back = sim.messages(dest=number.lstrip("+"))[-1]["text"]
    assert opted is not None
    assert "ALTA" in confirmation and "no recibira" in confirmation
    with transaction() as s:
        assert s.execute(text("SELECT opted_out_at FROM contacts WHERE msisdn = :n"), {"n": number}).scalar() is None
        actions = s.execute(text("SELECT action FROM audit.events WHERE action LIKE 'contact.opted%' "
                                 "ORDER BY seq")).scalars().all()
    assert "BAJA" in back
    assert actions == ["contact.opted_out", "contact.opted_in"]


def test_help_is_audited_and_told_to_the_supervisors_at_once(committed_db, redis_db, run_jobs):
    from tests.broadcast.inbound_rig import add_group

    add_group("supervisores", ["+56979400100"])
    with inbound_rig() as (sim, gateway):
        alert_id = seed_alert(["+56979400001"], escalation={"supervisors": "supervisores"})
        send(gateway, alert_id)
        mo(sim, "+56979400001", "AYUDA estoy atrapado")
        wait_inbound(sim, 2)
        process_all()
        run_jobs(("flash",))
        notice = sim.messages(dest="56979400100")
    assert len(notice) == 1 and "AYUDA" in notice[0]["text"] and "0001" in notice[0]["text"]
    with transaction() as s:
        [help_request] = live.help_requests(s)
        stream = live.events_since(s, alert_id, 0)
    assert help_request["alert_id"] == alert_id and help_request["text"] == "AYUDA estoy atrapado"
    assert [e["stage"] for e in stream["escalations"]] == ["help"]
    with transaction() as s:
        assert s.execute(text("SELECT count(*) FROM audit.events WHERE action = 'reply.help'")).scalar() == 1
        assert s.execute(text("SELECT stage FROM escalations WHERE alert_id = :a"), {"a": alert_id}).scalar() == "help"


def test_poll_answers_by_number_or_option_word(committed_db, redis_db):
    numbers = [f"+56979500{i:03d}" for i in range(5)]
    with inbound_rig() as (sim, gateway):
        alert_id = seed_alert(numbers, poll_options=["Sí, puedo", "No puedo", "Tal vez"])
        send(gateway, alert_id)
        for number, body in zip(numbers, ["1", "2", "3", "tal vez", "no puedo"], strict=True):
            mo(sim, number, body)
        wait_inbound(sim, 10)
        process_all()
        with transaction() as s:
            counts = live.alert_reply_counts(s, alert_id)
    assert counts["poll"] == {"Sí, puedo": 1, "No puedo": 2, "Tal vez": 2}


def test_verification_campaign_marks_contacts_verified_or_not(committed_db, redis_db):
    with inbound_rig() as (sim, gateway):
        alert_id = seed_alert(["+56979600001", "+56979600002"], escalation={"verification": True},
                              texts={"es": "Responda SI para confirmar que este sigue siendo su numero"})
        send(gateway, alert_id)
        mo(sim, "+56979600001", "SI")
        mo(sim, "+56979600002", "no")
        wait_inbound(sim, 4)
        process_all()
    with transaction() as s:
        states = dict(s.execute(text("SELECT msisdn, verification_state FROM contacts WHERE verified_at IS NOT NULL"))
                      .all())
    assert states == {"+56979600001": "verified", "+56979600002": "unverified"}
    assert reply_rows()["+56979600001"]["meaning"] == "verify_yes"


def test_live_counts_non_responders_and_event_stream(committed_db, redis_db):
    numbers = [f"+56979700{i:03d}" for i in range(6)]
    with inbound_rig() as (sim, gateway):
        alert_id = seed_alert(numbers)
        send(gateway, alert_id)
        for number, body in zip(numbers, ["ACK", "si", "no", "ayuda"], strict=False):
            mo(sim, number, body)
        mo(sim, numbers[0], "ACK de nuevo")  # a second ack from the same person counts once
        wait_inbound(sim, 6 + 5)
        process_all()
        with transaction() as s:
            counts = live.alert_reply_counts(s, alert_id)
            silent = live.non_responders(s, alert_id)
            first = live.events_since(s, alert_id, 0, limit=3)
            rest = live.events_since(s, alert_id, first["last_id"])
    assert (counts["ack"], counts["no"], counts["help"], counts["responders"]) == (2, 1, 1, 4)
    assert sum(counts["deliveries"].values()) == 6
    assert [r["msisdn"] for r in silent] == numbers[4:]
    assert len(first["events"]) == 3 and len(rest["events"]) == 2
    assert rest["events"][-1]["text"] == "ACK de nuevo"


def test_process_inbound_job_is_idempotent(committed_db, redis_db):
    with inbound_rig() as (sim, gateway):
        alert_id = seed_alert(["+56979800001"])
        send(gateway, alert_id)
        mo(sim, "+56979800001", "ok")
        wait_inbound(sim, 2)
        first = replies.process_inbound(0, 10**9)
        again = replies.process_inbound(0, 10**9)
    assert first["replies"] == 1 and again["replies"] == 0
    assert len(reply_rows()) == 1


def test_one_job_takes_every_row_of_its_range_past_one_batch(committed_db, redis_db, monkeypatch):
    """A burst can put more rows in a job's range than one batch takes: the job goes on in batches
    rather than leave the rest to the sweep, 5 s later."""
    monkeypatch.setattr(replies, "BATCH", 2)
    numbers = [f"+5697980010{i}" for i in range(5)]
    with inbound_rig() as (sim, gateway):
        alert_id = seed_alert(numbers)
        send(gateway, alert_id)
        for number in numbers:
            mo(sim, number, "ACK")
        wait_inbound(sim, 2 * len(numbers))
        report = replies.process_inbound(0, 10**9)
    assert report["replies"] == 5 and report["rows"] == 10
    assert len(reply_rows()) == 5


def live_alert(body: str, group: str, priority) -> int:  # type: ignore[no-untyped-def]
    """Composed, submitted and approved by as many approvers as its priority needs."""
    from uuid import uuid4

    from alerting.alerts.drafts import AlertDraft
    from alerting.base.models import Alert, AlertMode, Operator
    from tests.factories import actor_for

    with transaction() as s:
        people = [Operator(username=f"{role}-{uuid4().hex[:8]}", password_hash="x", roles=[role])
                  for role in ("composer", "approver", "approver")]
        s.add_all(people)
        s.flush()
        composer, *approvers = [actor_for(p) for p in people]
        alert = lifecycle.compose(s, AlertDraft(texts={"es": body}, mode=AlertMode.LIVE, sender_name="SIRENA-SC",
                                            priority=priority, target={"groups": [group]}), composer)
        lifecycle.submit(s, alert.id, composer)
        alert_id, needed = alert.id, alert.required_approvals
    for approver in approvers[:needed]:
        with transaction() as s:
            lifecycle.approve(s, alert_id, approver, seen_hash=s.get(Alert, alert_id).approval_hash)
    return alert_id


def test_opt_out_holds_for_routine_alerts_and_a_live_flash_overrides_it_visibly(gateway, simulator, run_jobs):
    """Policy (broadcast.jobs._overrides_opt_out): a live flash alert reaches opted-out contacts too."""
    from alerting.base.models import Priority
    from tests.broadcast.inbound_rig import add_group

    add_group("vecinos", ["+56988000001", "+56988000002", "+56988000003"])
    simulator.send_mo("alpha", "56988000001", "4242", "STOP")
    assert simulator.wait_for(lambda: _count("SELECT count(*) FROM inbound_messages") == 1)
    process_all()
    routine = live_alert("Corte de luz programado", "vecinos", Priority.NORMAL)
    run_jobs()
    flash = live_alert("Tsunami: evacue a zona alta", "vecinos", Priority.FLASH)
    run_jobs()
    with transaction() as s:
        reached = dict(s.execute(text("SELECT alert_id, count(*) FROM deliveries GROUP BY 1")).all())
        opted = s.execute(text("SELECT opted_out_reason FROM contacts WHERE msisdn = '+56988000001'")).scalar()
    assert opted == "replied stop"
    assert (reached[routine], reached[flash]) == (2, 3)
    got = simulator.messages_by_recipient()["56988000001"]
    assert any("no recibira" in t for t in got) and "Tsunami: evacue a zona alta" in got
    assert "Corte de luz programado" not in got


def _count(sql: str) -> int:
    with transaction() as s:
        return int(s.execute(text(sql)).scalar_one())


def test_binary_or_undecodable_replies_are_kept_raw_and_shown_as_such(committed_db, redis_db):
    numbers = [f"+5697990000{i}" for i in range(1, 6)]
    sent = [(b"ACK 4821", 0x04),  # 8-bit data that reads "ACK 4821" as Latin-1: still data, not an answer
            (b"\x00\xffsi\x00", 0x02),  # binary with NULs: PostgreSQL text cannot hold them
            (b"\x00A\x00C\x00K\x00", 0x08),  # UCS-2 of odd length
            (b"\x01\x02", 0xF5),  # GSM DCS class 1, 8-bit
            ("ACK".encode("utf-16-be"), 0x08)]  # well-formed UCS-2: read as usual
    with inbound_rig() as (sim, gateway):
        alert_id = seed_alert(numbers)
        send(gateway, alert_id)
        for number, (payload, data_coding) in zip(numbers, sent, strict=True):
            sim.send_mo("alpha", number.lstrip("+"), "4242", payload, data_coding)
        wait_inbound(sim, 2 * len(numbers))
        process_all()
    with transaction() as s:
        raw = {r.source_addr: r for r in s.execute(text(
            "SELECT source_addr, data_coding, short_message, text FROM inbound_messages WHERE kind = 'mo'"))}
        shown = {e["msisdn"]: e["text"] for e in live.events_since(s, alert_id, 0)["events"]}
    for number, (payload, data_coding) in zip(numbers[:4], sent, strict=False):
        row = raw[number.lstrip("+")]
        assert (bytes(row.short_message), row.data_coding, row.text) == (payload, data_coding, None), number
        assert shown[number] == f"(binary, {len(payload)} bytes, data_coding 0x{data_coding:02X})"
    got = reply_rows()
    assert [(got[n]["meaning"], got[n]["text"], got[n]["alert_id"]) for n in numbers] == [
        ("free_text", None, alert_id)] * 4 + [("ack", "ACK", alert_id)]


def test_an_operator_answers_one_responder_directly_audited(committed_db, redis_db, run_jobs):
    from broadcast.followups import direct_reply
    from tests.factories import actor_for

    with inbound_rig() as (sim, gateway):
        alert_id = seed_alert(["+56979900002"])
        send(gateway, alert_id)
        mo(sim, "+56979900002", "¿Llevo a mis mascotas?")
        wait_inbound(sim, 2)
        process_all()
        with transaction() as s:
            from alerting.base.models import Operator

            operator = s.query(Operator).first()
            reply_id = s.execute(text("SELECT id FROM replies")).scalar_one()
            direct_reply(s, reply_id, "Sí, con correa o jaula.", actor_for(operator))
        run_jobs(("flash",))
        answer = sim.messages(dest="56979900002")[-1]["text"]
    assert answer == "Sí, con correa o jaula."
    with transaction() as s:
        event = s.execute(text("SELECT subject_id, payload FROM audit.events WHERE action = 'reply.answered'")).one()
    assert event.subject_id == str(alert_id) and event.payload["to"] == "…0002"


def test_a_malformed_deliver_sm_is_stored_raw_and_the_gateway_keeps_receiving(committed_db, redis_db):
    with inbound_rig() as (sim, _gateway):
        sim.send_pdu("alpha", 0x05, b"\0\x01\x01569\0\x00\x01")  # ends before dest_addr_npi
        wait_inbound(sim, 1)
        mo(sim, "+56979970001", "ACK")
        wait_inbound(sim, 2)
        process_all()
    with transaction() as s:
        rows = s.execute(text("SELECT kind, short_message, tlvs, outcome FROM inbound_messages ORDER BY id")).all()
    assert [(r.kind, r.outcome) for r in rows] == [("unknown", "stored_raw"), ("mo", "unmatched_sender")]
    assert bytes(rows[0].short_message).endswith(b"569\0\x00\x01") and rows[0].tlvs["malformed"]


def test_a_configured_vocabulary_is_used_by_reply_processing(committed_db, redis_db, tmp_path):
    """SIRENA_VOCABULARY_FILE adds words; the process loads it once (as `sirena worker` does at start)."""
    from dataclasses import replace

    words = tmp_path / "vocabulary.toml"
    words.write_text('ack = ["vale", "copiado"]\nhelp = ["rescate"]\n', encoding="utf-8")
    numbers = ["+56979950001", "+56979950002", "+56979950003"]
    with runtime.using(settings=replace(committed_db, vocabulary_file=words)), inbound_rig() as (sim, gateway):
        alert_id = seed_alert(numbers)
        send(gateway, alert_id)
        for number, body in zip(numbers, ("Vale", "RESCATE techo", "ok"), strict=True):
            mo(sim, number, body)
        wait_inbound(sim, 2 * len(numbers))
        process_all()
    got = reply_rows()
    assert [got[n]["meaning"] for n in numbers] == ["ack", "help", "ack"]
    assert replies.current_vocabulary().read("vale").meaning.value == "free_text"  # forgotten: built-in words


def test_interpretation_is_the_next_job_a_worker_takes_even_behind_a_big_alert(db, redis_db):
    """HELP reaches the operator at once: the worker's hook queues interpretation ahead of every send batch."""
    import time
    from datetime import UTC, datetime

    from rq import Queue, SimpleWorker
    from rq.serializers import JSONSerializer

    from alerting.base import job_ids
    from alerting.base.outbox import enqueue_now
    from alerting.interfaces.cli.workers_cmd import WORKER_QUEUES, _process_inbound_hook
    from broadcast.escalation import periodic_pass

    for lo in range(0, 5000, 500):  # a big alert's batches wait on high, a flash alert's on flash
        for queue in ("high", "flash"):
            enqueue_now("broadcast.jobs.send_batch", 1, lo, lo + 499, queue=queue, job_id=f"send-{queue}-{lo}")
    inbound_id = db.execute(text("INSERT INTO inbound_messages (kind, source_addr, destination_addr, text) "
                                 "VALUES ('mo', '56979960001', '4242', 'AYUDA') RETURNING id")).scalar_one()
    _process_inbound_hook()([inbound_id])  # what the gateway's store does after its commit
    queues = [Queue(name, connection=redis_db, serializer=JSONSerializer) for name in WORKER_QUEUES]
    deadline = time.monotonic() + 10
    job_id = job_ids.process_inbound(inbound_id, inbound_id, "replies").job_id
    while job_id not in queues[0].job_ids and time.monotonic() < deadline:
        time.sleep(0.05)  # the coalescer fires from its own thread
    worker = SimpleWorker(queues, connection=redis_db, serializer=JSONSerializer)
    worker.work(burst=True, max_jobs=1, with_scheduler=False)
    outcome = db.execute(text("SELECT outcome FROM inbound_messages WHERE id = :i"), {"i": inbound_id}).scalar_one()
    assert outcome == "unmatched_sender"  # interpreted: the HELP is in replies, the operator sees it
    meaning = db.execute(text("SELECT meaning FROM replies WHERE inbound_id = :i"), {"i": inbound_id}).scalar_one()
    assert meaning == "help"
    assert (len(queues[0]), len(queues[1])) == (10, 10)  # every send batch still waits
    periodic_pass(datetime.now(UTC))  # the scheduler's sweep for lost jobs goes first too
    assert queues[0].job_ids[0].startswith("inbound-sweep-")
