"""Admin pages of self-registration by SMS: the published keywords and the policy, and the list of
registrations (filtered by state and number, paged, exported as CSV). Every rule is in
alerting/directory/registration*.py, shared with the CLI."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _

from alerting.base import csv_cells
from alerting.base.db import transaction
from alerting.base.errors import InvalidInput
from alerting.base.models import GroupKind
from alerting.base.sms_text.vocabulary import load_vocabulary
from alerting.directory import contacts as directory
from alerting.directory import registration_keywords as keywords
from alerting.directory import registration_records as records
from alerting.interfaces.web.errors import on_invalid
from alerting.interfaces.web.security import current_actor, requires
from geo import zones

bp = Blueprint("registration", __name__, url_prefix="/admin/registration")


def _render_keywords(errors: dict[str, str]) -> str:
    with transaction() as db:
        context = {"policy": keywords.load_policy(db), "keywords": keywords.list_keywords(db),
                   "counts": records.registration_counts(db), "zones": [z["name"] for z in zones.list_zones(db)],
                   "groups": [g.name for g in directory.list_groups(db) if g.kind is GroupKind.STATIC]}
    return render_template("admin/registration.html", errors=errors, v=request.form, **context)


@bp.get("")
@requires("registration.manage")
def keywords_page() -> str:
    """The policy (on/off, time to confirm, hourly limit) and the published keywords."""
    return _render_keywords({})


@bp.post("/keywords")
@requires("registration.manage")
@on_invalid(_render_keywords)
def publish() -> Any:
    """Publish a keyword for one zone or one static group (audited)."""
    form = request.form
    target = form.get("target", "")
    kind, _sep, name = target.partition(":")
    settings = current_app.config["SIRENA_SETTINGS"]
    with transaction() as db:
        row = keywords.publish_keyword(db, form.get("keyword", ""), zone=name if kind == "zone" else None,
                                       group=name if kind == "group" else None,
                                       description=form.get("description", ""),
                                       vocabulary=load_vocabulary(settings.vocabulary_file), actor=current_actor())
    flash(_("%(keyword)s published: residents may text ALTA %(keyword)s.", keyword=row.keyword.upper()), "ok")
    return redirect(url_for("registration.keywords_page"), 303)


@bp.post("/keywords/<keyword>/unpublish")
@requires("registration.manage")
def unpublish(keyword: str) -> Any:
    """Withdraw a keyword: new requests naming it are refused; who registered with it stays (audited)."""
    with transaction() as db:
        word = keywords.unpublish_keyword(db, keyword, actor=current_actor())
    flash(_("%(keyword)s withdrawn.", keyword=word.upper()), "ok")
    return redirect(url_for("registration.keywords_page"), 303)


def _number(field: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        number = low - 1
    if not low <= number <= high:
        raise InvalidInput(f"{field}: a whole number from {low} to {high}",
                           fields={field: f"a whole number from {low} to {high}"})
    return number


@bp.post("/policy")
@requires("registration.manage")
@on_invalid(_render_keywords)
def policy() -> Any:
    """Turn registration on or off, and set the time to confirm and the hourly limit (audited)."""
    form = request.form
    minutes = _number("confirm_minutes", form.get("confirm_minutes", ""), 1, 43_200)
    per_hour = _number("per_hour", form.get("per_hour", ""), 1, 100)
    with transaction() as db:
        keywords.set_policy(db, enabled=form.get("enabled") == "1", confirm_within_s=minutes * 60,
                            per_hour=per_hour, actor=current_actor())
    flash(_("Self-registration settings saved."), "ok")
    return redirect(url_for("registration.keywords_page"), 303)


def _filters() -> tuple[str | None, str | None]:
    state = request.args.get("state", "").strip() or None
    if state is not None and state not in records.STATES:
        raise InvalidInput(f"state: one of {', '.join(records.STATES)}",
                           fields={"state": f"one of {', '.join(records.STATES)}"})
    return state, request.args.get("q", "").strip()[:32] or None


@bp.get("/requests")
@requires("registration.manage")
def requests_page() -> str:
    """Registrations newest first, filtered by state and number, 50 a page."""
    state, q = _filters()
    before = request.args.get("before", "")
    with transaction() as db:
        rows, next_before = records.list_registrations(db, state=state, q=q, limit=records.PAGE,
                                                       before=int(before) if before.isdigit() else None)
        counts = records.registration_counts(db)
    return render_template("admin/registrations.html", rows=rows, counts=counts, state=state, q=q or "",
                           next_before=next_before, states=records.STATES, paged=before.isdigit())


@bp.get("/requests.csv")
@requires("registration.manage")
def requests_csv() -> Response:
    """Every registration matching the filter as CSV (full numbers, spreadsheet-safe cells),
    streamed; the export is audited before it starts."""
    state, q = _filters()
    with transaction() as db:
        records.record_export(db, state=state, q=q, actor=current_actor())

    def rows() -> Iterator[str]:
        out = io.StringIO()
        writer = csv_cells.writer(out)
        writer.writerow(records.CSV_COLUMNS)
        with transaction() as db:
            for n, view in enumerate(records.each_registration(db, state=state, q=q), 1):
                writer.writerow(records.csv_row(view))  # states as stored: the same file as the CLI's
                if n % 1000 == 0:
                    yield out.getvalue()
                    out.seek(0)
                    out.truncate()
        yield out.getvalue()

    return Response(stream_with_context(rows()), mimetype="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="registrations.csv"'})
