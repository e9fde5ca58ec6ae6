"""Delivery receipts and mobile-originated messages as deliver_sm bodies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from smsc_sim import pdu
from smsc_sim.text import encode_gsm7, encode_mo


@dataclass(slots=True)
class Delivery:
    """A deliver_sm waiting for (or sent to) a receiver bind; retried until deliver_sm_resp OK."""

    kind: str  # "receipt" | "mo"
    sm: pdu.ShortMessage
    message_id: str | None = None
    stat: str | None = None
    attempts: int = 0
    text: str | None = None  # the short message's text when built here (the log need not decode it)


def receipt_id(message_id: str, id_style: str, message_id_style: str) -> str:
    """How this carrier spells the id inside its receipts (real carriers differ from their resp)."""
    if id_style == "decimal" and message_id_style == "hex":
        try:
            return str(int(message_id, 16))
        except ValueError:
            return message_id
    if id_style == "upper":
        return message_id.upper()
    if id_style == "padded":
        return message_id.zfill(16)
    return message_id


@lru_cache(maxsize=64)
def _minute(minute: int) -> str:
    return datetime.fromtimestamp(minute * 60, UTC).strftime("%y%m%d%H%M")


def receipt_text(message_id: str, stat: str, err: int, submitted: float, done: float, text: str) -> str:
    """SMPP 3.4 appendix B receipt text."""
    sub, fin = _minute(int(submitted // 60)), _minute(int(done // 60))
    dlvrd = "001" if stat == "DELIVRD" else "000"
    return (f"id:{message_id} sub:001 dlvrd:{dlvrd} submit date:{sub} done date:{fin} "
            f"stat:{stat} err:{err:03d} text:{text[:20]}")


def build_receipt(
    *,
    message_id: str,
    stat: str,
    err: int,
    style: str,
    source: str,
    dest: str,
    submitted: float,
    done: float,
    text: str = "",
    source_ton: int = 1,
    source_npi: int = 1,
    dest_ton: int = 1,
    dest_npi: int = 1,
) -> Delivery:
    """A receipt deliver_sm (esm_class 0x04) from the recipient back to the sender.

    style "text": appendix-B text only; "tlv": receipted_message_id + message_state (+
    network_error_code when err) and an empty short_message; "both": the TLVs and the text.
    """
    tlvs: dict[int, bytes] = {}
    body, written = b"", ""
    if style in ("text", "both"):
        head = text[:20]
        if encode_gsm7(head) is None:
            head = "".join(ch if encode_gsm7(ch) is not None else "?" for ch in head)
        written = receipt_text(message_id, stat, err, submitted, done, head)
        body = encode_gsm7(written) or b""
    if style in ("tlv", "both"):
        tlvs[pdu.TAG_RECEIPTED_MESSAGE_ID] = message_id.encode("latin-1") + b"\0"
        tlvs[pdu.TAG_MESSAGE_STATE] = bytes((pdu.MESSAGE_STATES.get(stat, 7),))
        if err:
            tlvs[pdu.TAG_NETWORK_ERROR_CODE] = bytes((3,)) + err.to_bytes(2, "big")
    sm = pdu.ShortMessage(
        source_addr=source,
        destination_addr=dest,
        esm_class=0x04,
        data_coding=0,
        short_message=body,
        source_addr_ton=source_ton,
        source_addr_npi=source_npi,
        dest_addr_ton=dest_ton,
        dest_addr_npi=dest_npi,
        tlvs=tlvs,
    )
    return Delivery("receipt", sm, message_id=message_id, stat=stat, text=written if body else "")


def build_mo(source: str, dest: str, text: str | bytes, data_coding: int | None = None) -> Delivery:
    """A mobile-originated deliver_sm (esm_class 0): GSM-7 (dc 0) when it fits, else UCS-2 (dc 8).

    `text` as bytes is sent as it is, with `data_coding` (default 4, 8-bit data): a handset's binary
    message, or a broken payload."""
    if isinstance(text, bytes):
        octets, dc = text, 4 if data_coding is None else data_coding
    else:
        octets, dc = encode_mo(text)
        if data_coding == 8 and dc != 8:
            octets, dc = text.encode("utf-16-be"), 8
    sm = pdu.ShortMessage(
        source_addr=source,
        destination_addr=dest,
        esm_class=0,
        data_coding=dc,
        short_message=octets,
        source_addr_ton=1,
        source_addr_npi=1,
        dest_addr_ton=0 if len(dest) <= 6 else 1,
        dest_addr_npi=1,
    )
    return Delivery("mo", sm)
