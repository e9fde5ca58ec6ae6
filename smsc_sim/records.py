"""What the simulator saw: one Record per PDU, full messages reassembled, the JSON-lines log.

Records keep raw octets and decode text only when asked (`as_dict`), so logging to memory
costs little on the submit path; the file log encodes JSON per PDU (orjson: compact, UTF-8), buffered.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from smsc_sim import pdu
from smsc_sim.text import decode_text


@dataclass(slots=True)
class Record:
    """One PDU received (dir "in") or sent by the simulator (dir "out")."""

    t: float
    carrier: str
    bind: str
    dir: str
    command_id: int
    sequence: int
    status: int | None = None  # in: what we answered (None = no answer); out: what the ESME answered
    sm: pdu.ShortMessage | None = None
    message_id: str | None = None
    part: pdu.PartInfo | None = None
    text_octets: bytes = b""
    note: dict[str, Any] | None = None
    gsm7_codings: tuple[int, ...] = (0, 1)
    decoded: str | None = None  # `text` when known (built here, or decoded once for the file log)

    @property
    def text(self) -> str:
        if self.decoded is not None:
            return self.decoded
        return decode_text(self.text_octets, self.sm.data_coding, self.gsm7_codings) if self.sm else ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "time": self.t,
            "carrier": self.carrier,
            "bind": self.bind,
            "dir": self.dir,
            "command": pdu.command_name(self.command_id),
            "sequence": self.sequence,
            "status": self.status,
        }
        sm = self.sm
        if sm is not None:
            out.update(
                source=sm.source_addr,
                dest=sm.destination_addr,
                esm_class=sm.esm_class,
                data_coding=sm.data_coding,
                registered_delivery=sm.registered_delivery,
                text=self.text,
            )
            if self.part is not None:
                out["part"] = {"ref": self.part.ref, "total": self.part.total, "index": self.part.index}
            if sm.tlvs:
                out["tlvs"] = {f"0x{tag:04x}": value.hex() for tag, value in sm.tlvs.items()}
                reference = sm.tlvs.get(pdu.TAG_USER_MESSAGE_REFERENCE)
                if reference:
                    out["user_message_reference"] = int.from_bytes(reference, "big")
        if self.message_id is not None:
            out["message_id"] = self.message_id
        if self.note:
            out.update(self.note)
        return out


@dataclass(slots=True)
class Message:
    """A whole message to one recipient: a single submit_sm, or every part of a concatenated one."""

    carrier: str
    source: str
    dest: str
    parts: list[Record]
    ref: int | None = None
    t: float = field(default_factory=time.time)

    @property
    def text(self) -> str:
        first = self.parts[0]
        octets = b"".join(p.text_octets for p in self.parts)
        assert first.sm is not None
        # Joined before decoding: a UCS-2 surrogate pair may straddle two parts.
        return decode_text(octets, first.sm.data_coding, first.gsm7_codings)

    def as_dict(self) -> dict[str, Any]:
        return {
            "carrier": self.carrier,
            "source": self.source,
            "dest": self.dest,
            "text": self.text,
            "parts": len(self.parts),
            "ref": self.ref,
            "message_ids": [p.message_id for p in self.parts],
            "time": self.t,
            "user_message_reference": self.user_message_reference,
        }

    @property
    def user_message_reference(self) -> int | None:
        """The sender's own reference (TLV 0x0204) on the first part, if it set one."""
        sm = self.parts[0].sm
        raw = sm.tlvs.get(pdu.TAG_USER_MESSAGE_REFERENCE) if sm is not None else None
        return int.from_bytes(raw, "big") if raw else None


class PduLog:
    """Records in memory (when kept) and as JSON lines in a file (when a path is given)."""

    def __init__(self, path: Path | None, keep: bool) -> None:
        self.keep = keep
        self.records: list[Record] = []
        self.path = path
        self._file: IO[bytes] | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("ab", buffering=1 << 20)  # UTF-8 JSON lines (orjson writes UTF-8)

    @property
    def active(self) -> bool:
        return self.keep or self._file is not None

    def add(self, record: Record) -> None:
        if self.keep:
            self.records.append(record)
        if self._file is not None:
            if record.decoded is None and record.sm is not None:  # decoded once: its receipt quotes it too
                record.decoded = record.text
            self._file.write(orjson.dumps(record.as_dict(), option=orjson.OPT_APPEND_NEWLINE))

    def event(self, carrier: str, name: str, /, **data: Any) -> None:
        """A line that is not a PDU (reassembled message, connection dropped, fault set)."""
        if self._file is not None:
            line = {"time": time.time(), "carrier": carrier, "event": name, **data}
            self._file.write(orjson.dumps(line, default=str, option=orjson.OPT_APPEND_NEWLINE))

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
