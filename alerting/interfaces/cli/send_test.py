"""`sirena send-test`: one SMS through one carrier, with its message id and receipt.

What an engineer runs when a carrier is brought up: it binds to that carrier only, sends one
message, prints the carrier's message id and waits for the delivery receipt.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import threading
import time
from typing import Any

import click

from alerting.base.errors import InvalidInput, SirenaError
from alerting.interfaces.cli.app import Context, cli, emit, json_option, pass_ctx

_RECEIPT_ID = re.compile(rb"id:(\S+)")
_RECEIPT_FIELD = re.compile(rb"(sub|dlvrd|submit date|done date|stat|err):(\S*)")


@cli.command("send-test")
@click.option("--carrier", "carrier_name", required=True, help="Carrier name from the carriers file.")
@click.option("--to", "to", required=True, help="Destination, E.164 (+56991234567).")
@click.option("--sender", default=None, help="Sender name (default: the first one the carrier carries).")
@click.option("--wait-s", default=30.0, show_default=True, help="Seconds to wait for the receipt (0: do not).")
@json_option
@click.argument("text")
@pass_ctx
def send_test(ctx: Context, carrier_name: str, to: str, sender: str | None, wait_s: float, as_json: bool,
              text: str) -> None:
    """Send TEXT to --to through --carrier; print the message id and, when it arrives, the receipt."""
    from alerting.base.phones import normalize_msisdn
    from alerting.base.sms_text.encoding import ESM_CLASS_UDHI, encode_parts
    from broadcast.carriers import load_carriers
    from broadcast.pool import CarrierPool, OutboundMessage, Outcome

    # The entry point hands the process environment down: the carriers file names the variables.
    config = load_carriers(ctx.settings.carriers_file, os.environ)
    carrier = config.carrier(carrier_name)
    sender = sender or carrier.senders[0]
    if sender not in carrier.senders:
        raise InvalidInput(f'carrier {carrier.name} does not carry sender "{sender}"',
                           fields={"--sender": f"one of {', '.join(carrier.senders)}"})
    destination = normalize_msisdn(to, ctx.settings.default_region)
    encoded = encode_parts(text, random.randrange(256))
    receipts = _Receipts()
    pool = CarrierPool(config, receipts.on_deliver, carriers=[carrier.name])
    try:
        pool.start(wait_s=10)
        started = time.monotonic()
        message = OutboundMessage(0, sender, destination, encoded.parts, encoded.data_coding,
                                  ESM_CLASS_UDHI if encoded.esm_class_udhi else 0,
                                  allowed_carriers=frozenset({carrier.name}))
        result = pool.submit_many([message], timeout_s=carrier.response_timeout_s * 3)[0]
        if result.outcome is not Outcome.SUBMITTED:
            code = f" (0x{result.error_code:02X})" if result.error_code is not None else ""
            raise SirenaError(f"carrier {carrier.name} did not take the message: {result.outcome}{code}: "
                              f"{result.reason}", carrier=carrier.name)
        ids = [i or "" for i in result.message_ids]
        if not as_json:
            click.echo(f"submitted through {result.bind} ({encoded.encoding}, {len(ids)} part(s)); "
                       f"message id {', '.join(ids)}")
        got = receipts.wait(ids, wait_s)
    finally:
        pool.stop(drain_s=1)
    data: dict[str, Any] = {
        "carrier": carrier.name, "bind": result.bind, "sender": sender, "to": destination,
        "encoding": encoded.encoding, "parts": len(ids), "message_ids": ids,
        "receipts": [dict(r, seconds=round(r["at"] - started, 2)) for r in got],
    }
    for receipt in data["receipts"]:
        del receipt["at"]
    if as_json:
        emit(True, data)
    elif got:
        for receipt in data["receipts"]:
            click.echo(f"receipt for {receipt['message_id']}: {receipt.get('stat', '?')} "
                       f"(err {receipt.get('err', '?')}) after {receipt['seconds']} s")
    elif wait_s > 0:
        click.echo(f"no receipt within {wait_s:g} s (the carrier may send it later)")


class _Receipts:
    """deliver_sm receipts seen on the test binds, matched to our message ids."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.arrived = threading.Condition()

    def on_deliver(self, carrier: str, bind: str, fields: dict[str, Any]) -> None:
        body = fields.get("short_message") or b""
        tlvs = fields.get("tlvs") or {}
        found = _RECEIPT_ID.search(body)
        message_id = tlvs.get("receipted_message_id") or (found.group(1).decode("latin-1") if found else None)
        if message_id is None:
            return  # a reply, not a receipt: not what this command waits for
        receipt: dict[str, Any] = {"message_id": message_id, "at": time.monotonic()}
        for key, value in _RECEIPT_FIELD.findall(body):
            receipt[key.decode().replace(" ", "_")] = value.decode("latin-1")
        if "message_state" in tlvs:
            receipt["message_state"] = tlvs["message_state"]
        with self.arrived:
            self.seen.append(receipt)
            self.arrived.notify_all()

    def wait(self, message_ids: list[str], wait_s: float) -> list[dict[str, Any]]:
        """Receipts for `message_ids` that arrive within `wait_s` (one per part at most)."""
        deadline = time.monotonic() + wait_s
        with self.arrived:
            while True:
                got: dict[str, dict[str, Any]] = {}
                for receipt in self.seen:
                    keys = _id_keys(receipt["message_id"])
                    for ours in message_ids:
                        if ours not in got and keys & _id_keys(ours):
                            got[ours] = dict(receipt, message_id=ours)
                left = deadline - time.monotonic()
                if len(got) == len(message_ids) or left <= 0:
                    return list(got.values())
                self.arrived.wait(left)


def _id_keys(message_id: str) -> set[int | str]:
    """The values one id may stand for: carriers spell it in hex or decimal, any case, zero-padded."""
    text = message_id.strip().lower()
    keys: set[int | str] = {text.lstrip("0") or "0"}
    for base in (16, 10):
        with contextlib.suppress(ValueError):
            keys.add(int(text, base))
    return keys
