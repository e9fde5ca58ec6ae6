"""SMPP 3.4 PDU codec for the simulator: the commands an SMSC needs, with TLVs.

Decoding works on (buffer, start, end) offsets so the server never copies a PDU it reads.
`decode_sm` is the hot path (every submit_sm); the other commands go through field tables.
Every decoder raises `PduError(status)` on a malformed body; it never raises anything else
for bad input, so a reader can answer generic_nack and carry on.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

HEADER = struct.Struct(">IIII")
HEADER_LEN = 16
# The largest legal PDU is a submit_sm with a 64 KiB message_payload; anything beyond is garbage.
MAX_PDU_LEN = 70_000

GENERIC_NACK = 0x80000000
BIND_RECEIVER = 0x00000001
BIND_TRANSMITTER = 0x00000002
QUERY_SM = 0x00000003
SUBMIT_SM = 0x00000004
DELIVER_SM = 0x00000005
UNBIND = 0x00000006
REPLACE_SM = 0x00000007
CANCEL_SM = 0x00000008
BIND_TRANSCEIVER = 0x00000009
OUTBIND = 0x0000000B
ENQUIRE_LINK = 0x00000015
SUBMIT_MULTI = 0x00000021
ALERT_NOTIFICATION = 0x00000102
DATA_SM = 0x00000103
RESP = 0x80000000

# bind's password is a C-Octet String of at most 9 octets with its NUL (SMPP 3.4 §4.1.1), and
# system_id one of 16: an SMSC cannot take more. The simulator refuses, at start, an account it
# could never be bound to (the gateway refuses the same passwords: broadcast/carriers.py).
PASSWORD_MAX = 8


def password_problem(password: str) -> str | None:
    """Why `password` cannot be a bind's password, or None: printable ASCII (an octet a character),
    at most PASSWORD_MAX characters."""
    if not password.isascii() or any(not ch.isprintable() for ch in password):
        return "holds characters other than printable ASCII (SMPP's password is a C-Octet String)"
    if len(password) > PASSWORD_MAX:
        return (f"is {len(password)} characters long; SMPP allows at most {PASSWORD_MAX} "
                "(a C-Octet String of 9 octets with its NUL)")
    return None


COMMAND_NAMES = {
    GENERIC_NACK: "generic_nack",
    BIND_RECEIVER: "bind_receiver",
    BIND_TRANSMITTER: "bind_transmitter",
    QUERY_SM: "query_sm",
    SUBMIT_SM: "submit_sm",
    DELIVER_SM: "deliver_sm",
    UNBIND: "unbind",
    REPLACE_SM: "replace_sm",
    CANCEL_SM: "cancel_sm",
    BIND_TRANSCEIVER: "bind_transceiver",
    OUTBIND: "outbind",
    ENQUIRE_LINK: "enquire_link",
    SUBMIT_MULTI: "submit_multi",
    ALERT_NOTIFICATION: "alert_notification",
    DATA_SM: "data_sm",
}
for _cid, _name in list(COMMAND_NAMES.items()):
    if _cid != GENERIC_NACK:
        COMMAND_NAMES[_cid | RESP] = _name + "_resp"

# command_status values the simulator answers with (SMPP 3.4 §5.1.3).
ESME_ROK = 0x00
ESME_RINVMSGLEN = 0x01
ESME_RINVCMDLEN = 0x02
ESME_RINVCMDID = 0x03
ESME_RINVBNDSTS = 0x04
ESME_RALYBND = 0x05
ESME_RSYSERR = 0x08
ESME_RINVSRCADR = 0x0A
ESME_RINVDSTADR = 0x0B
ESME_RBINDFAIL = 0x0D
ESME_RINVPASWD = 0x0E
ESME_RINVSYSID = 0x0F
ESME_RMSGQFUL = 0x14
ESME_RINVSYSTYP = 0x53
ESME_RTHROTTLED = 0x58

# TLV tags we read or write.
TAG_SC_INTERFACE_VERSION = 0x0210
TAG_RECEIPTED_MESSAGE_ID = 0x001E
TAG_MESSAGE_STATE = 0x0427
TAG_NETWORK_ERROR_CODE = 0x0423
TAG_MESSAGE_PAYLOAD = 0x0424
TAG_USER_MESSAGE_REFERENCE = 0x0204
TAG_SAR_MSG_REF_NUM = 0x020C
TAG_SAR_TOTAL_SEGMENTS = 0x020E
TAG_SAR_SEGMENT_SEQNUM = 0x020F

# message_state values (SMPP 3.4 §5.2.28) by the appendix-B `stat:` word.
MESSAGE_STATES = {
    "ENROUTE": 1,
    "DELIVRD": 2,
    "EXPIRED": 3,
    "DELETED": 4,
    "UNDELIV": 5,
    "ACCEPTD": 6,
    "UNKNOWN": 7,
    "REJECTD": 8,
}


class PduError(Exception):
    """A PDU that cannot be decoded; `status` is the command_status to answer with."""

    def __init__(self, message: str, status: int = ESME_RSYSERR) -> None:
        super().__init__(message)
        self.status = status


def command_name(command_id: int) -> str:
    """The spec's name for a command_id, or `unknown_0x...`."""
    return COMMAND_NAMES.get(command_id) or f"unknown_0x{command_id:08x}"


# ---- fields -----------------------------------------------------------------------------
# "c" = C-Octet String (NUL-terminated), "b" = 1-octet integer.
BIND_FIELDS = (
    ("system_id", "c"),
    ("password", "c"),
    ("system_type", "c"),
    ("interface_version", "b"),
    ("addr_ton", "b"),
    ("addr_npi", "b"),
    ("address_range", "c"),
)
BODY_FIELDS: dict[int, tuple[tuple[str, str], ...]] = {
    BIND_RECEIVER: BIND_FIELDS,
    BIND_TRANSMITTER: BIND_FIELDS,
    BIND_TRANSCEIVER: BIND_FIELDS,
    BIND_RECEIVER | RESP: (("system_id", "c"),),
    BIND_TRANSMITTER | RESP: (("system_id", "c"),),
    BIND_TRANSCEIVER | RESP: (("system_id", "c"),),
    SUBMIT_SM | RESP: (("message_id", "c"),),
    DELIVER_SM | RESP: (("message_id", "c"),),
    UNBIND: (),
    UNBIND | RESP: (),
    ENQUIRE_LINK: (),
    ENQUIRE_LINK | RESP: (),
    GENERIC_NACK: (),
}


def _cstr(buf: bytes, pos: int, end: int) -> tuple[bytes, int]:
    nul = buf.find(b"\0", pos, end)
    if nul < 0:
        raise PduError("C-string runs past the end of the PDU", ESME_RINVCMDLEN)
    return buf[pos:nul], nul + 1


def decode_tlvs(buf: bytes, pos: int, end: int) -> dict[int, bytes]:
    """Optional parameters from `pos` to `end`; unknown tags are kept (the spec says tolerate)."""
    tlvs: dict[int, bytes] = {}
    while pos < end:
        if end - pos < 4:
            raise PduError("truncated TLV header", ESME_RINVCMDLEN)
        tag, length = struct.unpack_from(">HH", buf, pos)
        pos += 4
        if pos + length > end:
            raise PduError(f"TLV 0x{tag:04x} runs past the end of the PDU", ESME_RINVCMDLEN)
        tlvs[tag] = buf[pos : pos + length]
        pos += length
    return tlvs


def encode_tlvs(tlvs: dict[int, bytes]) -> bytes:
    return b"".join(struct.pack(">HH", tag, len(value)) + value for tag, value in tlvs.items())


def decode_body(command_id: int, buf: bytes, pos: int, end: int) -> tuple[dict[str, object], dict[int, bytes]]:
    """Fields and TLVs of a non-message PDU. A response may omit its body (error responses do)."""
    spec = BODY_FIELDS.get(command_id)
    if spec is None:
        raise PduError(f"no decoder for {command_name(command_id)}", ESME_RINVCMDID)
    fields: dict[str, object] = {}
    for name, kind in spec:
        if pos >= end:
            if command_id & RESP:
                break
            raise PduError(f"{command_name(command_id)} is missing {name}", ESME_RINVCMDLEN)
        if kind == "c":
            raw, pos = _cstr(buf, pos, end)
            fields[name] = raw.decode("latin-1")
        else:
            fields[name] = buf[pos]
            pos += 1
    return fields, decode_tlvs(buf, pos, end)


def encode_pdu(command_id: int, sequence: int, status: int = 0, body: bytes = b"") -> bytes:
    """A whole PDU: header + an already encoded body."""
    return HEADER.pack(HEADER_LEN + len(body), command_id, status, sequence) + body


def encode_fields(command_id: int, fields: dict[str, object]) -> bytes:
    """Body bytes for a table-driven command; missing fields default to "" / 0."""
    out = bytearray()
    for name, kind in BODY_FIELDS[command_id]:
        value = fields.get(name)
        if kind == "c":
            out += (str(value) if value is not None else "").encode("latin-1") + b"\0"
        else:
            out.append(int(value) if isinstance(value, int) else 0)
    return bytes(out)


# ---- submit_sm / deliver_sm -------------------------------------------------------------
@dataclass(slots=True)
class ShortMessage:
    """The body of a submit_sm or deliver_sm (they share a layout)."""

    source_addr: str
    destination_addr: str
    esm_class: int = 0
    registered_delivery: int = 0
    data_coding: int = 0
    short_message: bytes = b""
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    tlvs: dict[int, bytes] = field(default_factory=dict)


def decode_sm(buf: bytes, pos: int, end: int) -> ShortMessage:
    """Decode a submit_sm/deliver_sm body. Raises PduError when it is malformed."""
    find = buf.find
    nul = find(b"\0", pos, end)
    if nul < 0 or nul + 3 > end:
        raise PduError("service_type runs past the end of the PDU", ESME_RINVCMDLEN)
    service_type = buf[pos:nul]
    src_ton, src_npi = buf[nul + 1], buf[nul + 2]
    pos = nul + 3
    nul = find(b"\0", pos, end)
    if nul < 0 or nul + 3 > end:
        raise PduError("source_addr runs past the end of the PDU", ESME_RINVCMDLEN)
    source = buf[pos:nul]
    dst_ton, dst_npi = buf[nul + 1], buf[nul + 2]
    pos = nul + 3
    nul = find(b"\0", pos, end)
    if nul < 0 or nul + 4 > end:
        raise PduError("destination_addr runs past the end of the PDU", ESME_RINVCMDLEN)
    dest = buf[pos:nul]
    esm_class, protocol_id, priority = buf[nul + 1], buf[nul + 2], buf[nul + 3]
    pos = nul + 4
    nul = find(b"\0", pos, end)
    if nul < 0:
        raise PduError("schedule_delivery_time runs past the end of the PDU", ESME_RINVCMDLEN)
    schedule = buf[pos:nul]
    pos = nul + 1
    nul = find(b"\0", pos, end)
    if nul < 0 or nul + 6 > end:
        raise PduError("validity_period runs past the end of the PDU", ESME_RINVCMDLEN)
    validity = buf[pos:nul]
    registered_delivery, data_coding, sm_length = buf[nul + 1], buf[nul + 3], buf[nul + 5]
    pos = nul + 6
    if pos + sm_length > end:
        raise PduError("short_message runs past the end of the PDU", ESME_RINVMSGLEN)
    short_message = buf[pos : pos + sm_length]
    pos += sm_length
    tlvs = decode_tlvs(buf, pos, end) if pos < end else {}
    return ShortMessage(
        source.decode("latin-1"),
        dest.decode("latin-1"),
        esm_class,
        registered_delivery,
        data_coding,
        short_message,
        service_type.decode("latin-1"),
        src_ton,
        src_npi,
        dst_ton,
        dst_npi,
        protocol_id,
        priority,
        schedule.decode("latin-1"),
        validity.decode("latin-1"),
        tlvs,
    )


def encode_sm(sm: ShortMessage) -> bytes:
    """Body bytes of a submit_sm/deliver_sm. A payload over 254 octets goes in message_payload."""
    text = sm.short_message
    tlvs = dict(sm.tlvs)
    if len(text) > 254:
        tlvs[TAG_MESSAGE_PAYLOAD] = text
        text = b""
    return b"".join(
        (
            sm.service_type.encode("latin-1"),
            b"\0",
            bytes((sm.source_addr_ton, sm.source_addr_npi)),
            sm.source_addr.encode("latin-1"),
            b"\0",
            bytes((sm.dest_addr_ton, sm.dest_addr_npi)),
            sm.destination_addr.encode("latin-1"),
            b"\0",
            bytes((sm.esm_class, sm.protocol_id, sm.priority_flag)),
            sm.schedule_delivery_time.encode("latin-1"),
            b"\0",
            sm.validity_period.encode("latin-1"),
            b"\0",
            bytes((sm.registered_delivery, 0, sm.data_coding, 0, len(text))),
            text,
            encode_tlvs(tlvs),
        )
    )


def payload_of(sm: ShortMessage) -> bytes:
    """The message octets: short_message, or the message_payload TLV when that is used."""
    return sm.short_message or sm.tlvs.get(TAG_MESSAGE_PAYLOAD, b"")


@dataclass(frozen=True, slots=True)
class PartInfo:
    """Where one part sits in a concatenated message."""

    ref: int
    total: int
    index: int


def split_udh(payload: bytes, esm_class: int, tlvs: dict[int, bytes]) -> tuple[bytes, bytes, PartInfo | None]:
    """(udh, text octets, part info) of a message; concatenation from UDH IE 0x00/0x08 or SAR TLVs.

    A UDH that claims more octets than the payload holds is treated as no UDH (raw text kept).
    """
    udh = b""
    part: PartInfo | None = None
    if esm_class & 0x40 and payload:
        udhl = payload[0]
        if 1 + udhl <= len(payload):
            udh, payload = payload[: 1 + udhl], payload[1 + udhl :]
            pos = 1
            while pos + 2 <= len(udh):
                iei, iel = udh[pos], udh[pos + 1]
                data = udh[pos + 2 : pos + 2 + iel]
                if iei == 0x00 and iel == 3 and len(data) == 3:
                    part = PartInfo(data[0], data[1], data[2])
                elif iei == 0x08 and iel == 4 and len(data) == 4:
                    part = PartInfo(int.from_bytes(data[:2], "big"), data[2], data[3])
                pos += 2 + iel
    if part is None and TAG_SAR_MSG_REF_NUM in tlvs:
        try:
            part = PartInfo(
                int.from_bytes(tlvs[TAG_SAR_MSG_REF_NUM], "big"),
                tlvs[TAG_SAR_TOTAL_SEGMENTS][0],
                tlvs[TAG_SAR_SEGMENT_SEQNUM][0],
            )
        except (KeyError, IndexError):
            part = None
    return udh, payload, part
