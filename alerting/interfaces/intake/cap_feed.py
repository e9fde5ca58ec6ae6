"""Polling a CAP feed (Atom or RSS whose entries link to CAP 1.2 documents, or carry them inline).

Each CAP document found goes through cap_import.import_cap like any other (so it becomes an alert
pending approval, deduplicated by sender, identifier and sent); a link already fetched is not
fetched again (intake_messages, channel "cap-feed", subject = the link). Feeds and documents are
parsed with defusedxml (no DTDs), fetched with a timeout and a size cap.
"""

from __future__ import annotations

import logging
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlparse

from defusedxml.ElementTree import fromstring
from sqlalchemy import select

from alerting.base.db import transaction
from alerting.base.errors import InvalidInput, SirenaError
from alerting.base.intake_config import IntakeConfig
from alerting.base.models.intake import IntakeMessage
from alerting.interfaces.intake import cap
from alerting.interfaces.intake.cap_import import import_cap
from alerting.interfaces.intake.review import keep_for_review, record
from audit.actor import Actor

log = logging.getLogger("sirena.intake.cap_feed")

ATOM = "http://www.w3.org/2005/Atom"
CHANNEL = "cap-feed"
TIMEOUT_S = 15
MAX_BYTES = cap.MAX_DOCUMENT_BYTES


@dataclass
class PollReport:
    seen: int = 0
    imported: list[str] = field(default_factory=list)  # alert references
    duplicates: int = 0
    refused: dict[str, str] = field(default_factory=dict)  # link → reason


def fetch(url: str) -> bytes:
    """GET `url` (http or https only), at most MAX_BYTES. Raises InvalidInput naming the URL."""
    if urlparse(url).scheme not in {"http", "https"}:
        raise InvalidInput(f"feed: {url} is not an http(s) URL", fields={"url": "http(s) only"})
    request = urllib.request.Request(url, headers={"User-Agent": "Sirena-CAP-poller/1"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
            data = response.read(MAX_BYTES + 1)
    except OSError as exc:
        raise InvalidInput(f"feed: cannot fetch {url}: {exc}", fields={"url": str(exc)[:200]}) from None
    if len(data) > MAX_BYTES:
        raise InvalidInput(f"feed: {url} is larger than {MAX_BYTES} bytes", fields={"url": "too large"})
    return data


def entries(feed_url: str, data: bytes) -> list[tuple[str, bytes | None]]:
    """(link, inline CAP or None) for each entry of an Atom or RSS feed."""
    try:
        root = fromstring(data, forbid_dtd=True)
    except Exception as exc:
        raise InvalidInput(f"feed: {feed_url} is not a readable Atom/RSS document ({type(exc).__name__})",
                           fields={"feed": "not Atom or RSS"}) from None
    found: list[tuple[str, bytes | None]] = []
    for entry in root.iter(f"{{{ATOM}}}entry"):
        inline = entry.find(f".//{{{cap.NS}}}alert")
        link = _atom_link(entry)
        found.append((urljoin(feed_url, link) if link else f"{feed_url}#{len(found)}",
                      ET.tostring(inline) if inline is not None else None))
    for item in root.iter("item"):  # RSS 2.0
        link = (item.findtext("link") or "").strip()
        if link:
            found.append((urljoin(feed_url, link), None))
    return found


def _atom_link(entry: ET.Element) -> str | None:
    links = entry.findall(f"{{{ATOM}}}link")
    for link in links:
        if "cap" in (link.get("type") or ""):
            return link.get("href")
    return links[0].get("href") if links else None


def poll_feed(feed_url: str, *, actor: Actor, config: IntakeConfig) -> PollReport:
    """Import every new CAP document of the feed; one transaction per document."""
    report = PollReport()
    for link, inline in entries(feed_url, fetch(feed_url)):
        report.seen += 1
        with transaction() as session:
            done = session.scalar(select(IntakeMessage.id).where(IntakeMessage.channel == CHANNEL,
                                                                 IntakeMessage.subject == link,
                                                                 IntakeMessage.outcome != "fetch_failed"))
        if done is not None:
            continue
        data = inline
        try:
            data = data if data is not None else fetch(link)
            with transaction() as session:
                result = import_cap(session, data, actor=actor, config=config)
                record(session, CHANNEL, sender=feed_url, subject=link, raw=data,
                       outcome="duplicate" if result.action == "duplicate" else "draft_created",
                       alert_id=result.alert_id)
        except SirenaError as exc:
            report.refused[link] = exc.message
            keep_for_review(CHANNEL, sender=feed_url, subject=link, raw=data, reason=exc.message,
                            outcome="fetch_failed" if data is None else "refused")  # a failed fetch is retried
            continue
        if result.action == "duplicate":
            report.duplicates += 1
        elif result.reference:
            report.imported.append(result.reference)
    log.info("cap feed %s: %s entries, imported %s, refused %s", feed_url, report.seen, len(report.imported),
             len(report.refused))
    return report
