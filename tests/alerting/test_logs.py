"""The JSON log lines every process writes (alerting/base/logs.py)."""

from __future__ import annotations

import io
import json
import logging

import pytest

from alerting.base.logs import JsonFormatter, configure_logging, mask_phones


def _line(level: int, message: str, *args: object, **extra: object) -> dict:
    record = logging.LogRecord("sirena.test", level, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return json.loads(JsonFormatter().format(record))


def test_a_line_is_one_json_object_with_the_ids_as_fields():
    line = _line(logging.INFO, "fan-out alert_id=%s wrote=%s carrier=alpha", 12, 500, delivery_id=99)
    assert line["msg"] == "fan-out alert_id=12 wrote=500 carrier=alpha"
    assert (line["alert_id"], line["delivery_id"], line["carrier"]) == (12, 99, "alpha")
    assert line["level"] == "INFO" and line["logger"] == "sirena.test" and line["ts"].endswith("Z")


@pytest.mark.parametrize("raw, shown", [
    ("sent to +56912345678", "sent to ***5678"),
    ("sent to 56912345678 and 4915112345678", "sent to ***5678 and ***5678"),
    ("delivery_id=123456789 ok", "delivery_id=123456789 ok"),  # an id is not a phone number
    ("batch send-12-1000-1500", "batch send-12-1000-1500"),
])
def test_phone_numbers_show_only_their_last_four_digits(raw, shown):
    assert mask_phones(raw) == shown


def test_phone_numbers_are_masked_in_extras_and_tracebacks():
    try:
        raise ValueError("no route to +56987654321")
    except ValueError:
        import sys

        record = logging.LogRecord("sirena.test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    record.msisdn = "+56911112222"
    line = json.loads(JsonFormatter().format(record))
    assert line["msisdn"] == "***2222"
    assert "987654321" not in line["exc"] and "***4321" in line["exc"]


def test_message_text_is_kept_out_of_the_logs_above_debug():
    assert "text" not in _line(logging.INFO, "rendered", text="Evacuar sector norte")
    assert _line(logging.DEBUG, "rendered", text="Evacuar sector norte")["text"] == "Evacuar sector norte"


def test_configure_logging_is_idempotent_and_routes_rq_through_the_same_handler():
    from alerting.base import logs

    stream = io.StringIO()
    level = logging.getLogger().level
    handler = configure_logging("INFO", stream=stream)
    try:
        assert configure_logging("INFO", stream=stream) is handler
        assert logging.getLogger().handlers.count(handler) == 1
        logging.getLogger("rq.worker").info("Job OK (send-1-1-500)")
        logging.getLogger("sirena.x").debug("hidden")
        lines = [json.loads(x) for x in stream.getvalue().splitlines()]
        assert [x["logger"] for x in lines] == ["rq.worker"]
    finally:  # leave the test process's logging as it was
        for name in ("", "rq.worker", "rq.scheduler", "rq.queue"):
            logging.getLogger(name).removeHandler(handler)
            if name:
                logging.getLogger(name).propagate = True
                logging.getLogger(name).setLevel(logging.NOTSET)
        logging.getLogger().setLevel(level)
        logs._handler = None
