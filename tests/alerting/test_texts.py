"""What phones show: a shared short code's keyword written into the reply instruction."""

from __future__ import annotations

import pytest

from alerting.base.models import Alert, AlertMode
from alerting.base.sms_text.rendering import render, texts_for_phones, with_reply_keyword


@pytest.mark.parametrize(("written", "shown"), [
    ("Evacuar. Responda ACK {codigo}", "Evacuar. Responda BOMBEROS ACK {codigo}"),
    ("Responda ACK {codigo} o AYUDA {codigo}.", "Responda BOMBEROS ACK {codigo} o BOMBEROS AYUDA {codigo}."),
    ("Responda BOMBEROS ACK {codigo}", "Responda BOMBEROS ACK {codigo}"),  # written already: not twice
    ("responda si {codigo} para confirmar", "responda BOMBEROS si {codigo} para confirmar"),
    ("Reply CONFIRMED {code}", "Reply BOMBEROS CONFIRMED {code}"),  # a word in capitals is a reply word
])
def test_the_keyword_goes_before_each_reply_word_of_the_instruction(written: str, shown: str):
    assert with_reply_keyword(written, "BOMBEROS", "es", ask_reply=True) == shown


def test_an_instruction_is_added_only_when_answers_are_chased():
    assert with_reply_keyword("Corte de agua hasta las 18:00", "BOMBEROS", "es", ask_reply=True) == (
        "Corte de agua hasta las 18:00. Responda BOMBEROS ACK {codigo}.")
    assert with_reply_keyword("No water until 6 pm!", "BOMBEROS", "en", ask_reply=True) == (
        "No water until 6 pm! Reply BOMBEROS ACK {codigo}.")
    assert with_reply_keyword("Fin del corte", "BOMBEROS", "es", ask_reply=False) == "Fin del corte"
    assert with_reply_keyword("el código {codigo} de su zona", "BOMBEROS", "es", ask_reply=False) == (
        "el código {codigo} de su zona")  # a lower-case word that is no reply word: not an instruction


def test_a_dedicated_code_keeps_the_text_as_written():
    written = "Corte. Responda ACK {codigo}"
    assert with_reply_keyword(written, None, "es", ask_reply=True) == written


def test_the_phone_text_of_an_alert_on_a_shared_code():
    alert = Alert(texts={"es": "Evacuar {nombre|vecino}. Responda ACK {codigo}"}, ack_deadline_s=600,
                  poll_options=None, mode=AlertMode.LIVE, reply_code="4821", reference="A-2026-000001")
    body = texts_for_phones(alert, "BOMBEROS")["es"]
    assert render(body, mode=alert.mode, language="es", code="4821", reference="A-2026-000001") == (
        "Evacuar vecino. Responda BOMBEROS ACK 4821")
