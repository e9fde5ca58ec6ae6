"""Replies nobody matched: an unknown number, a number with no alert open, an unknown keyword.

Read-only; the list comes from broadcast/live.py, numbers by their last 4 digits only.
"""

from __future__ import annotations

from flask import Blueprint, render_template, request

from alerting.db import transaction
from alerting.web.security import requires
from broadcast import live

bp = Blueprint("replies", __name__, url_prefix="/replies")

PAGE = 100


@bp.get("/unmatched")
@requires("replies.read_unmatched")
def unmatched() -> str:
    """The latest unmatched replies, newest first; `before` (a reply id) pages back."""
    raw = request.args.get("before", "")
    before = int(raw) if raw.isdigit() and len(raw) <= 18 else None
    with transaction() as db:
        rows = live.unmatched_replies(db, limit=PAGE + 1, before_id=before)
    return render_template("replies/unmatched.html", rows=rows[:PAGE],
                           older=rows[PAGE - 1]["id"] if len(rows) > PAGE else None)
