"""Watching and steering an alert once it is out: live counts, replies, the responders' map,
non-responders, cancel, the one-step pre-approved correction (or a different one, pending
approval), escalate now, answering one responder.

The routes belong to the `alerts` blueprint (their endpoints read `alerts.detail`, …).
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Iterator
from typing import Any

from flask import Response, flash, jsonify, redirect, render_template, request, stream_with_context, url_for
from flask_babel import gettext as _
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from alerting.alerts import corrections, drafts, help_desk, incidents, lifecycle, prearmed
from alerting.base import csv_cells
from alerting.base.db import transaction, utcnow
from alerting.base.errors import InvalidInput
from alerting.base.models import Alert, AlertKind, AlertMode, AlertState
from alerting.directory import senders
from alerting.interfaces.web import labels, lifetime, review
from alerting.interfaces.web.console import carrier_view
from alerting.interfaces.web.console.alerts import ACTION_LIMIT, approvals_of, bp
from alerting.interfaces.web.console.replies import shown_helps
from alerting.interfaces.web.errors import on_invalid
from alerting.interfaces.web.i18n import localtime, translate_message
from alerting.interfaces.web.labels import label
from alerting.interfaces.web.security import current_actor, limiter, requires, step_up
from audit import trail
from audit.timeline import alert_timeline
from broadcast import escalation, followups, jobs, next_numbers
from broadcast import live as live_view

LONG_POLL_MAX_S = 20.0  # under every proxy's idle timeout; the page asks again at once
LONG_POLL_STEP_S = 0.5
DONE = (AlertState.COMPLETED, AlertState.CANCELLED, AlertState.SUPERSEDED, AlertState.REJECTED)
NON_RESPONDERS_PAGE = 50
UNMATCHED_SHOWN = 20


@bp.get("/alerts")
@requires("alerts.read")
def index() -> str:
    """The latest 200 alerts."""
    with transaction() as db:
        rows = list(db.scalars(select(Alert).order_by(Alert.id.desc()).limit(200)))
    return render_template("alerts/index.html", alerts=rows)


@bp.get("/alerts/<int:alert_id>")
@requires("alerts.read")
def detail(alert_id: int) -> str:
    """An alert, live: how far (recipients, sent, delivered, failed; a bar to the total), how fast
    (time since approval, rate, chart), who needs help (HELP, ACK, this alert's unmatched replies,
    the non-responders a page at a time, `nr_after` the last delivery id of the previous page),
    carriers' share and health, the responders' map, actions."""
    after = int(_query_number("nr_after"))
    with transaction() as db:
        alert = drafts.get_alert(db, alert_id)
        silent = live_view.non_responders(db, alert_id, limit=NON_RESPONDERS_PAGE + 1, after_id=after)
        context = {
            "alert": alert, "phones": review.phone_texts(alert, senders.sender_keyword(db, alert.sender_name)),
            "prearmed": prearmed.prearmed(db, alert_id),
            "approvals": approvals_of(db, alert_id), "live": _live(db, alert, after=0),
            "timeline": alert_timeline(db, alert_id),
            "desk": shown_helps(help_desk.open_helps(db, alert_id=alert_id)), "help_alert_id": alert_id,
            "original": db.get(Alert, alert.corrects_alert_id) if alert.corrects_alert_id else None,
            "fireable": alert.state in lifecycle.FIREABLE,
            "silent": silent[:NON_RESPONDERS_PAGE], "silent_after": after,
            "silent_next": (silent[NON_RESPONDERS_PAGE - 1]["delivery_id"]
                            if len(silent) > NON_RESPONDERS_PAGE else None),
            "followups": followups.followups_of(db, alert_id),
            "incident": incidents.get_incident(db, alert.incident_id) if alert.incident_id else None,
            "open_incidents": [] if alert.incident_id else incidents.list_incidents(db, open_only=True, limit=50),
            "moves": next_numbers.moves_of(db, alert_id, limit=NON_RESPONDERS_PAGE),
        }
    return render_template("alerts/detail.html", **context)


def _live(db: Session, alert: Alert, *, after: int) -> dict[str, Any]:
    """What the live page shows and its long poll sends: counts by state and carrier, the progress
    summary, carriers' share and health, reply counts, replies after `after`, this alert's
    unmatched replies, times (approval, first submit, the server's now: the page counts from it)."""
    timing = corrections.correction_timing(db, alert) if alert.kind is not AlertKind.ALERT else None
    stream = live_view.events_since(db, alert.id, after)
    for event in stream["events"]:
        event["msisdn"] = "…" + (event["msisdn"] or "")[-4:]
    counts, by_carrier = jobs.counts_by_state(db, alert.id), jobs.counts_by_carrier(db, alert.id)
    binds, binds_error = carrier_view.bind_rows()
    carriers, now = carrier_view.carrier_rows(db, by_carrier, binds), utcnow()
    for row in carriers:
        row["why"] = translate_message(row["why"])
    return {"state": alert.state.value, "state_label": label(alert.state), "counts": counts,
            "carriers": by_carrier, "carrier_rows": carriers, "binds_error": binds_error,
            "summary": live_view.progress(counts, stream["counts"]), "replies": stream["counts"],
            "events": stream["events"], "last_id": stream["last_id"],
            "unmatched": live_view.alert_unmatched(db, alert.id, limit=UNMATCHED_SHOWN),
            "version": live_view.live_marks(db, alert.id)[0],
            "approved_at": alert.approved_at.isoformat() if alert.approved_at else None,
            "first_submit_at": alert.first_submit_at.isoformat() if alert.first_submit_at else None,
            "now": now.isoformat(), "now_local": localtime(now, "%H:%M:%S"),
            "elapsed_s": (now - alert.approved_at).total_seconds() if alert.approved_at else None,
            "correction_seconds": timing["seconds"] if timing else None, "done": alert.state in DONE}


@bp.get("/alerts/<int:alert_id>/non-responders.csv")
@requires("alerts.non_responders")
def non_responders_csv(alert_id: int) -> Response:
    """Every non-responder of the alert as CSV (full numbers: this is the list to phone), streamed;
    the download is audited before it starts, as an export of people's numbers."""
    with transaction() as db:
        alert = drafts.get_alert(db, alert_id)
        trail.append(db, actor=current_actor(), action="alert.non_responders_exported", subject_type="alert",
                     subject_id=alert_id, payload={"reference": alert.reference})
    reference = alert.reference

    def rows() -> Iterator[str]:
        out = io.StringIO()
        writer = csv_cells.writer(out)
        writer.writerow([_("Alert"), _("Delivery"), _("Name"), _("Phone"), _("State")])
        with transaction() as db:
            for n, row in enumerate(live_view.each_non_responder(db, alert_id), 1):
                writer.writerow([reference, row["delivery_id"], row["name"] or "", row["msisdn"],
                                 label(row["state"], labels.DELIVERY_STATE)])
                if n % 1000 == 0:
                    yield out.getvalue()
                    out.seek(0)
                    out.truncate()
        yield out.getvalue()

    return Response(stream_with_context(rows()), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{reference}-non-responders.csv"'})


@bp.get("/alerts/<int:alert_id>/live.json")
@requires("alerts.read")
def live(alert_id: int) -> Any:
    """A long poll: counts by state and carrier, reply counts, replies after `after`, and `version`.

    With `wait=S` (at most LONG_POLL_MAX_S) the answer waits until a reply after `after` lands or
    anything shown changes (against `seen`, the `version` of the previous answer; without it,
    against the first look), looking every LONG_POLL_STEP_S; after S seconds it answers anyway
    (no events). No connection is held while waiting: each look is its own short transaction.
    """
    after = int(_query_number("after"))
    wait_s = min(_query_number("wait"), LONG_POLL_MAX_S)
    seen = request.args.get("seen") or None
    deadline = time.monotonic() + wait_s
    while True:
        with transaction() as db:
            alert = drafts.get_alert(db, alert_id)
            version, last_reply = live_view.live_marks(db, alert_id)
            seen = seen or version
            # A completed alert still gets replies (ACKs arrive for minutes after the last submit).
            if (version != seen or last_reply > after or time.monotonic() + LONG_POLL_STEP_S > deadline
                    or lifetime.stopping.is_set()):  # a stopping server answers now: the page asks the next one
                return jsonify(_live(db, alert, after=after))
        time.sleep(LONG_POLL_STEP_S)


def _query_number(name: str) -> float:
    """A finite non-negative number from the query string; 0 when absent or anything else."""
    try:
        value = float(request.args.get(name) or 0)
    except ValueError:
        return 0.0
    return value if math.isfinite(value) and 0 <= value < 2**53 else 0.0


@bp.get("/alerts/<int:alert_id>/points.geojson")
@requires("alerts.read")
def points(alert_id: int) -> Any:
    """Located recipients coloured by status: the blast radius before, who has answered after."""
    with transaction() as db:
        return jsonify(review.recipient_points(db, drafts.get_alert(db, alert_id)))


@bp.post("/alerts/<int:alert_id>/cancel")
@requires("alerts.cancel")
def cancel(alert_id: int) -> Any:
    """Stop a send: unsent deliveries purged at once; the correction is offered next."""
    reason = request.form.get("reason", "").strip()
    if not reason:
        raise InvalidInput("say why the send is stopped", fields={"reason": "required"})
    with transaction() as db:
        alert = lifecycle.cancel(db, alert_id, current_actor(), reason)
    # Stopping is not informing (FIELD.md req. 13): the detail page now offers the correction first.
    flash(_("Alert %(reference)s stopped. People already reached have NOT been told: send the correction.",
            reference=alert.reference), "error")
    return redirect(url_for("alerts.detail", alert_id=alert_id), 303)


def _detail_again(errors: dict[str, str]) -> Any:
    """After a wrong step-up code or a bad text: the alert page again (the message is flashed)."""
    del errors
    return detail((request.view_args or {})["alert_id"])


@bp.post("/alerts/<int:alert_id>/correction")
@requires("alerts.correct")
@on_invalid(_detail_again)
@limiter.limit(ACTION_LIMIT)
def correction(alert_id: int) -> Any:
    """Fire the PRE-APPROVED correction (or cancellation) in one step, at flash priority.

    For a live alert the operator confirms with a fresh TOTP code, as for approving one. A typed
    text is refused here (and audited): it goes through `correction_proposal` instead.
    """
    kind = request.form.get("kind", "correction")
    typed = request.form.get("text", "").strip() or None
    with transaction() as db:
        if drafts.get_alert(db, alert_id).mode is AlertMode.LIVE:
            step_up(db, "console.alerts.correction")  # a hijacked session alone cannot reach every phone
        fire = corrections.fire_cancel_notice if kind == "cancel" else corrections.fire_correction
        fixed = fire(db, alert_id, current_actor(), typed)
    flash(_("%(reference)s is going out at flash priority to everyone the original reached.",
            reference=fixed.reference), "ok")
    return redirect(url_for("alerts.detail", alert_id=fixed.id), 303)


@bp.post("/alerts/<int:alert_id>/correction/proposal")
@requires("alerts.propose_correction")
@on_invalid(_detail_again)
@limiter.limit(ACTION_LIMIT)
def correction_proposal(alert_id: int) -> Any:
    """A correction with a different text: a flash alert to the same audience, pending approval."""
    kind = AlertKind.CANCEL if request.form.get("kind") == "cancel" else AlertKind.CORRECTION
    with transaction() as db:
        proposed = corrections.propose_correction(db, alert_id, request.form.get("text", ""), current_actor(),
                                                  kind=kind)
    flash(_("%(reference)s waits for approval by %(n)s other operator(s); the pre-approved correction can "
            "still be sent at once.", reference=proposed.reference, n=proposed.required_approvals), "ok")
    return redirect(url_for("alerts.detail", alert_id=proposed.id), 303)


@bp.post("/alerts/<int:alert_id>/escalate")
@requires("alerts.escalate")
@limiter.limit(ACTION_LIMIT)
def escalate(alert_id: int) -> Any:
    """Run every escalation stage not yet run, now."""
    with transaction() as db:
        stages = escalation.escalate_now(db, alert_id, current_actor())
    flash(_("Escalation: %(n)s stage(s) run now.", n=len(stages)), "ok")
    return redirect(url_for("alerts.detail", alert_id=alert_id), 303)


@bp.post("/alerts/<int:alert_id>/replies/<int:reply_id>/answer")
@requires("replies.answer")
@limiter.limit(ACTION_LIMIT)
def answer(alert_id: int, reply_id: int) -> Any:
    """A one-to-one SMS to one responder, from the sender their reply reached (audited)."""
    with transaction() as db:
        alert_of_reply = db.execute(text("SELECT alert_id FROM replies WHERE id = :r"), {"r": reply_id}).scalar()
        if alert_of_reply != alert_id:
            raise InvalidInput("that reply does not belong to this alert", fields={"reply_id": "not this alert's"})
        followups.direct_reply(db, reply_id, request.form.get("text", ""), current_actor())
    flash(_("Answer queued at flash priority."), "ok")
    return redirect(url_for("alerts.detail", alert_id=alert_id), 303)
