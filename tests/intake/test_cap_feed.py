"""Polling a CAP Atom feed served over real HTTP: new documents become alerts once, refusals are kept."""

from __future__ import annotations

import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from alerting.base.db import transaction
from alerting.base.intake_config import IntakeConfig
from alerting.base.models import Alert, Operator, Sender, SenderKind
from alerting.base.models.intake import IntakeMessage
from alerting.interfaces.intake.cap_feed import poll_feed
from tests.factories import actor_for
from tests.intake.conftest import cap_file

FEED = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><id>urn:test</id><title>t</title><updated>2026-11-27T10:00:00Z</updated>
<entry><id>a</id><title>circle</title><updated>2026-11-27T10:00:00Z</updated>
  <link rel="alternate" type="application/cap+xml" href="australia.xml"/></entry>
<entry><id>b</id><title>cancel</title><updated>2026-11-27T10:00:00Z</updated>
  <link rel="alternate" type="application/cap+xml" href="cancel.xml"/></entry>
</feed>"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def feed_url(tmp_path):  # type: ignore[no-untyped-def]
    (tmp_path / "feed.atom").write_text(FEED)
    (tmp_path / "australia.xml").write_bytes(cap_file("australia-circle.xml"))
    (tmp_path / "cancel.xml").write_bytes(cap_file("ipaws-cancel.xml"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/feed.atom"
    server.shutdown()
    server.server_close()


def test_a_feed_is_imported_once_and_a_bad_entry_is_kept_for_review(committed_db, feed_url):
    with transaction() as session:
        session.add(Sender(name="SIRENA-SC", kind=SenderKind.SHORT, address="4242", active=True))
        operator = Operator(username="poller", password_hash="x", roles=["composer"])
        session.add(operator)
        session.flush()
        actor = actor_for(operator, interface="cap")
    first = poll_feed(feed_url, actor=actor, config=IntakeConfig())
    assert first.seen == 2 and len(first.imported) == 1
    assert list(first.refused) == [feed_url.replace("feed.atom", "cancel.xml")]
    second = poll_feed(feed_url, actor=actor, config=IntakeConfig())
    assert second.imported == [] and second.refused == {}
    with transaction() as session:
        assert len(session.scalars(select(Alert)).all()) == 1
        kept = session.scalar(select(IntakeMessage).where(IntakeMessage.outcome == "refused"))
        assert kept.channel == "cap-feed" and b"<msgType>Cancel</msgType>" in kept.raw
