"""Pre-armed corrections (FIELD.md requirements 5, 6 and 13): every alert carries a correction text
and a cancellation text per language, written (or taken from the templates below) while it is
still a draft and approved with it (`arm_on_approval`). Firing them is in alerting/alerts/corrections.py;
setting them is part of composing and editing (alerting/alerts/lifecycle.py).
"""

from __future__ import annotations

import hashlib
import json

from sqlalchemy.orm import Session

from alerting.base.db import utcnow
from alerting.base.errors import InvalidInput
from alerting.base.models import Alert
from alerting.base.models.alerts import PrearmedTexts
from audit import trail
from audit.actor import Actor

CORRECTION_TEMPLATES = {
    "es": "CORRECCIÓN: el mensaje {referencia} fue enviado por error. No hay emergencia. No haga nada.",
    "en": "CORRECTION: message {referencia} was sent in error. There is no emergency. Take no action.",
}
CANCEL_TEMPLATES = {
    "es": "ANULADA: la alerta {referencia} queda sin efecto. Siga las indicaciones de las autoridades.",
    "en": "CANCELLED: alert {referencia} no longer applies. Follow the authorities' instructions.",
}
MAX_CORRECTION_CHARS = 1000


def texts_digest(correction: dict[str, str], cancel: dict[str, str]) -> str:
    material = json.dumps({"correction": correction, "cancel": cancel}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(material.encode()).hexdigest()


def default_texts(languages: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """The templates' correction and cancellation texts for these languages."""
    langs = [lang for lang in languages if lang in CORRECTION_TEMPLATES] or ["es"]
    return ({lang: CORRECTION_TEMPLATES[lang] for lang in langs}, {lang: CANCEL_TEMPLATES[lang] for lang in langs})


def prearmed(session: Session, alert_id: int, *, lock: bool = False) -> PrearmedTexts | None:
    """The alert's correction and cancellation texts, if written yet."""
    return session.get(PrearmedTexts, alert_id, with_for_update=lock)


def checked_texts(alert: Alert, correction: dict[str, str] | None,
                  cancel: dict[str, str] | None) -> tuple[dict[str, str], dict[str, str]]:
    """The texts as they will be kept (stripped; blank ones: the templates in the alert's languages).
    InvalidInput naming each over-long text or language other than es and en."""
    base_correction, base_cancel = default_texts(sorted(alert.texts))
    correction = {k: v.strip() for k, v in (correction or {}).items() if v and v.strip()} or base_correction
    cancel = {k: v.strip() for k, v in (cancel or {}).items() if v and v.strip()} or base_cancel
    problems = {f"{name}.{lang}": f"longer than {MAX_CORRECTION_CHARS} characters"
                for name, texts in (("correction_texts", correction), ("cancel_texts", cancel))
                for lang, body in texts.items() if len(body) > MAX_CORRECTION_CHARS}
    problems.update({f"{name}.{lang}": "language must be es or en"
                     for name, texts in (("correction_texts", correction), ("cancel_texts", cancel))
                     for lang in texts if lang not in ("es", "en")})
    if problems:
        raise InvalidInput("the correction texts cannot be used as given", fields=problems)
    return correction, cancel


def write(session: Session, alert_id: int, row: PrearmedTexts | None, correction: dict[str, str],
          cancel: dict[str, str], editor: Actor) -> PrearmedTexts:
    """Store checked texts (a new row, or `row` changed and disarmed), audited."""
    digest = texts_digest(correction, cancel)
    if row is None:
        row = PrearmedTexts(alert_id=alert_id, correction_texts=correction, cancel_texts=cancel, texts_sha256=digest)
        session.add(row)
    else:
        row.correction_texts, row.cancel_texts, row.texts_sha256 = correction, cancel, digest
        row.armed_at, row.armed_by_id, row.updated_at = None, None, utcnow()
    session.flush()
    trail.append(session, actor=editor, action="alert.correction_texts_set", subject_type="alert",
                 subject_id=alert_id, payload={"correction_texts": correction, "cancel_texts": cancel,
                                               "texts_sha256": digest})
    return row


def arm_on_approval(session: Session, alert: Alert, approver: Actor) -> PrearmedTexts:
    """Record that the approval covered the correction texts (the templates if none were written)."""
    row = session.get(PrearmedTexts, alert.id, with_for_update=True)
    if row is None:
        correction, cancel = default_texts(sorted(alert.texts))
        row = PrearmedTexts(alert_id=alert.id, correction_texts=correction, cancel_texts=cancel,
                            texts_sha256=texts_digest(correction, cancel))
        session.add(row)
    row.armed_at, row.armed_by_id = utcnow(), approver.operator_id
    session.flush()
    trail.append(session, actor=approver, action="alert.correction_armed", subject_type="alert", subject_id=alert.id,
                 payload={"texts_sha256": row.texts_sha256})
    return row


