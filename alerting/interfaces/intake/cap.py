"""CAP 1.2 documents: parse safely, validate against the OASIS schema, read into plain values, write.

- Parsing uses defusedxml with DTDs forbidden: no entity expansion, no external entities (XXE), no
  billion laughs. A document with a DOCTYPE is refused before anything reads it.
- Validation uses xmlschema against schema/CAP-v1.2.xsd shipped in this package (see SOURCES.md
  there); the refusal names the element and the reason.
- Elements may be default-namespaced or prefixed (`cap:alert`): everything is matched by namespace.
What the values mean for Sirena (mode, priority, targets, corrections) is decided in cap_import.py.
"""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import xmlschema
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from alerting.base.errors import InvalidInput

NS = "urn:oasis:names:tc:emergency:cap:1.2"
DSIG = "http://www.w3.org/2000/09/xmldsig#"
XSD = Path(__file__).resolve().parent / "schema" / "CAP-v1.2.xsd"
MAX_DOCUMENT_BYTES = 2 * 1024 * 1024


@dataclass
class CapArea:
    description: str
    polygons: list[str] = field(default_factory=list)  # "lat,lon lat,lon …" as written
    circles: list[str] = field(default_factory=list)  # "lat,lon radius_km"
    geocodes: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class CapInfo:
    language: str  # as written, "en-US" when absent (the CAP default)
    event: str
    urgency: str
    severity: str
    certainty: str
    headline: str = ""
    description: str = ""
    instruction: str = ""
    sender_name: str = ""
    areas: list[CapArea] = field(default_factory=list)


@dataclass
class CapDocument:
    identifier: str
    sender: str
    sent: str  # exactly as written: part of the dedupe key and of references
    status: str
    msg_type: str
    scope: str
    references: list[tuple[str, str, str]] = field(default_factory=list)
    infos: list[CapInfo] = field(default_factory=list)
    signed: bool = False

    @property
    def sent_at(self) -> datetime:
        return datetime.fromisoformat(self.sent)


@functools.cache
def _schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(XSD))


def parse_xml(data: bytes) -> ET.Element:
    """The root element of `data`; refuses DTDs and entities (XXE-safe). Raises InvalidInput."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise InvalidInput(f"cap: document larger than {MAX_DOCUMENT_BYTES} bytes", fields={"cap": "too large"})
    try:
        return fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise InvalidInput(f"cap: refused, the document declares a DTD or entities ({type(exc).__name__}); "
                           "CAP needs neither", fields={"cap": "DTD or entity declarations are not accepted"}) from None
    except ET.ParseError as exc:
        raise InvalidInput(f"cap: not well-formed XML ({exc})", fields={"cap": f"not well-formed XML: {exc}"}) from None


def validate(root: ET.Element) -> None:
    """Check `root` against the OASIS CAP 1.2 schema; InvalidInput names the first bad element."""
    if root.tag != f"{{{NS}}}alert":
        raise InvalidInput(f"cap: the root element is {root.tag}, not a CAP 1.2 <alert> ({NS})",
                           fields={"cap": "not a CAP 1.2 alert"})
    errors = list(_schema().iter_errors(root))
    if errors:
        first = errors[0]
        where = first.path or "/alert"
        reason = (first.reason or str(first)).splitlines()[0]
        problems = {(e.path or "/alert"): (e.reason or str(e)).splitlines()[0] for e in errors[:20]}
        raise InvalidInput(f"cap: {where}: {reason}", fields=problems)


def _text(node: ET.Element | None, name: str) -> str:
    child = node.find(f"{{{NS}}}{name}") if node is not None else None
    return (child.text or "").strip() if child is not None else ""


def _all(node: ET.Element, name: str) -> list[ET.Element]:
    return node.findall(f"{{{NS}}}{name}")


def read(root: ET.Element) -> CapDocument:
    """The values of a validated CAP alert (call validate() first)."""
    refs = []
    for triple in _text(root, "references").split():
        parts = triple.split(",")
        if len(parts) == 3:
            refs.append((parts[0], parts[1], parts[2]))
        else:
            raise InvalidInput(f'cap: /alert/references: "{triple}" is not sender,identifier,sent',
                               fields={"/alert/references": f'"{triple}" is not sender,identifier,sent'})
    doc = CapDocument(identifier=_text(root, "identifier"), sender=_text(root, "sender"), sent=_text(root, "sent"),
                      status=_text(root, "status"), msg_type=_text(root, "msgType"), scope=_text(root, "scope"),
                      references=refs, signed=root.find(f"{{{DSIG}}}Signature") is not None)
    for info in _all(root, "info"):
        areas = []
        for area in _all(info, "area"):
            areas.append(CapArea(
                description=_text(area, "areaDesc"),
                polygons=[(p.text or "").strip() for p in _all(area, "polygon")],
                circles=[(c.text or "").strip() for c in _all(area, "circle")],
                geocodes=[(_text(g, "valueName"), _text(g, "value")) for g in _all(area, "geocode")],
            ))
        doc.infos.append(CapInfo(
            language=_text(info, "language") or "en-US", event=_text(info, "event"), urgency=_text(info, "urgency"),
            severity=_text(info, "severity"), certainty=_text(info, "certainty"), headline=_text(info, "headline"),
            description=_text(info, "description"), instruction=_text(info, "instruction"),
            sender_name=_text(info, "senderName"), areas=areas,
        ))
    return doc


def load(data: bytes) -> tuple[CapDocument, ET.Element]:
    """Parse, validate and read a CAP 1.2 document. Raises InvalidInput naming the problem."""
    root = parse_xml(data)
    validate(root)
    return read(root), root


def cap_time(moment: datetime) -> str:
    """A CAP dateTime: seconds precision, explicit offset, never "Z" (the schema's pattern refuses it)."""
    text = moment.replace(microsecond=0).isoformat()
    return text[:-6] + "-00:00" if text.endswith("+00:00") else text


@dataclass
class ExportInfo:
    language: str
    event: str
    urgency: str
    severity: str
    certainty: str
    headline: str
    description: str
    areas: list[tuple[str, list[str]]]  # (areaDesc, CAP polygons)
    category: str = "Safety"
    sender_name: str = "Sirena"


def write(identifier: str, sender: str, sent: str, status: str, msg_type: str, infos: list[ExportInfo], *,
          references: list[tuple[str, str, str]] | None = None, note: str = "") -> bytes:
    """A CAP 1.2 document (default namespace), elements in the schema's order; validated before returning."""
    ET.register_namespace("", NS)

    def sub(parent: ET.Element, name: str, value: str) -> ET.Element:
        node = ET.SubElement(parent, f"{{{NS}}}{name}")
        node.text = value
        return node

    root = ET.Element(f"{{{NS}}}alert")
    for name, value in (("identifier", identifier), ("sender", sender), ("sent", sent), ("status", status),
                        ("msgType", msg_type), ("scope", "Public")):
        sub(root, name, value)
    if note:
        sub(root, "note", note)
    if references:
        sub(root, "references", " ".join(",".join(r) for r in references))
    for info in infos:
        node = ET.SubElement(root, f"{{{NS}}}info")
        for name, value in (("language", info.language), ("category", info.category), ("event", info.event),
                            ("urgency", info.urgency), ("severity", info.severity), ("certainty", info.certainty),
                            ("senderName", info.sender_name), ("headline", info.headline),
                            ("description", info.description)):
            sub(node, name, value)
        for description, polygons in info.areas:
            area = ET.SubElement(node, f"{{{NS}}}area")
            sub(area, "areaDesc", description)
            for polygon in polygons:
                sub(area, "polygon", polygon)
    data = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    validate(parse_xml(data))
    return data
