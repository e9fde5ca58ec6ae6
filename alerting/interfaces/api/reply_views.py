"""Replies over the API that belong to no alert (the per-alert list is in alerting/interfaces/api/alerts.py)."""

from __future__ import annotations

from typing import Any

from alerting.base.db import transaction
from alerting.interfaces.api import api_bp
from alerting.interfaces.api.alerts import parse_cursor
from alerting.interfaces.api.framework import operation
from alerting.interfaces.api.schemas import PageQuerySchema, UnmatchedReplyPageSchema
from broadcast import live


@operation(api_bp, "GET", "/replies/unmatched", summary="Replies that matched no alert, newest first",
           tag="replies", query=PageQuerySchema, response=UnmatchedReplyPageSchema, scope="read",
           action="replies.read_unmatched",
           description="A number not in the directory (unmatched_sender), a number with no alert open "
                       "(no_open_alert) or an unknown keyword on a shared short code (unknown_keyword). "
                       "Numbers show their last 4 digits only. Cursor-paginated backwards.")
def list_unmatched_replies(query: dict[str, Any]) -> dict[str, Any]:
    before, limit = parse_cursor(query.get("cursor")), query["limit"]
    with transaction() as session:
        rows = live.unmatched_replies(session, limit=limit + 1, before_id=before or None)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": rows, "next_cursor": str(rows[-1]["id"]) if more else None}
