"""An incident's after-action report as a file: HTML (one self-contained page: styles, the chart
library, the figures and the signed trail export inside it, nothing fetched from anywhere), CSV
(the figures table) or JSON (everything, the trail export under "audit_export").

The console, the API and `sirena report incident` all make it here: the export is audited first
(`report.record_report_export`), the trail sealed so that event is in it, the report built, and the
incident's part of the trail exported, signed, into it (`audit.export.write_export`), so that
`sirena audit verify --export FILE` checks the very file handed over. HTML is rendered with the
console's templates and words, so it needs the app's context (the CLI builds the app for it).
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import current_app, render_template
from flask_babel import force_locale
from flask_babel import gettext as _

from alerting.alerts import report
from alerting.base.db import engine, transaction
from alerting.base.errors import ConfigError, InvalidInput
from alerting.base.settings import Settings
from alerting.directory import permissions
from alerting.interfaces.web.i18n import decimal, duration
from audit.actor import Actor
from audit.checkpoints import signing_key
from audit.export import EMBED_ID, embed_in_html, write_export
from audit.seal import seal_committed

MEDIA_TYPES = {"html": "text/html; charset=utf-8", "csv": "text/csv; charset=utf-8",
               "json": "application/json"}
# Inlined into the HTML export, in this order (paths under the app's static folder).
STYLES = ("css/console.css", "css/report.css", "vendor/uplot/uPlot.min.css")
SCRIPTS = ("vendor/uplot/uPlot.iife.min.js", "js/report.js")
_BANNER = re.compile(r"^/\*!.*?\*/\s*", re.DOTALL)  # a minified library's first comment (its home page's URL)


@dataclass(frozen=True)
class Made:
    report: report.Report
    body: str
    media_type: str
    file_name: str


def file_name(rep: report.Report, fmt: str) -> str:
    return f"{rep.incident['reference']}-after-action.{fmt}"


def check_format(fmt: str) -> str:
    """The format asked for, or InvalidInput naming `format`."""
    if fmt not in report.FORMATS:
        raise InvalidInput(f"format: expected html, csv or json, got {fmt!r}",
                           fields={"format": "expected html, csv or json"})
    return fmt


def make(incident_id: int, actor: Actor, fmt: str, destination: str, settings: Settings, *,
         lang: str = "es", name: str | None = None) -> Made:
    """Audit the export, seal, build the report with its signed trail export, render it as `fmt`.
    `name` is the file the auditor will hold (for the verify command printed in it). The list of
    non-responders is in it only when `actor` may see it (alerts.non_responders). Raises NotFound,
    InvalidInput (format), Refused."""
    check_format(fmt)
    with transaction() as session:
        report.record_report_export(session, incident_id, actor, fmt, destination)
    seal_committed(engine())  # the export's own record has its place in the chain, and in the file
    with transaction() as session:
        rep = report.build_report(session, incident_id,
                                  list_non_responders=permissions.allowed(actor.roles, "alerts.non_responders")
                                  or actor.kind == "system")
        trail_json = io.StringIO()
        write_export(session, report.audit_scope(session, incident_id), "json", trail_json,
                     key=_key(settings))
    shown = name or file_name(rep, fmt)
    report.attach_verification(rep, trail_json.getvalue(), f"sirena audit verify --export {shown}")
    return Made(rep, render(rep, fmt, lang=lang), MEDIA_TYPES[fmt], shown)


def _key(settings: Settings) -> bytes | None:
    try:
        return signing_key(settings)
    except ConfigError:  # no secret key here: the export is unsigned, and its verification line says so
        return None


def render(rep: report.Report, fmt: str, *, lang: str = "es") -> str:
    """The report as text in `fmt` (HTML needs the app's context)."""
    if fmt == "csv":
        out = io.StringIO()
        report.write_figures_csv(rep, out)
        return out.getvalue()
    if fmt == "json":
        return json.dumps(report.as_json(rep), ensure_ascii=False, indent=1) + "\n"
    with force_locale(lang):
        return render_template("incidents/report_export.html", r=rep, lang=lang, fmt_s=seconds,
                               styles=_inline(STYLES), scripts=_inline(SCRIPTS), uplot_licence=_licence(),
                               chart_data=chart_data(rep), audit_export=_embedded(rep), embed_id=EMBED_ID)


def seconds(value: float | None) -> str | None:
    """A time as the report shows it: tenths of a second under a minute (a receipt comes in less
    than one), else as the live page does; None when that share was never reached."""
    if value is None:
        return None
    return f"{decimal(value, '#,##0.0')} s" if value < 60 else duration(value)


def chart_data(rep: report.Report) -> dict[str, Any]:
    """What js/report.js draws: the curves and the words of the charts."""
    return {"curves": rep.curves, "strings": {
        "all": _("all carriers"), "answered": _("answers"), "time_axis": _("time since the alert started"),
        "incident_axis": _("time since the incident's first alert started"), "count_axis": _("people"),
        "no_data": _("Nothing delivered or answered yet.")}}


def _static(path: str) -> str:
    folder = current_app.static_folder
    assert folder is not None
    return (Path(folder) / path).read_text(encoding="utf-8")


def _inline(paths: tuple[str, ...]) -> list[str]:
    """Static files as the HTML export carries them: whole, less a leading banner comment (it names
    the library's web site: the file names no address at all)."""
    out = []
    for path in paths:
        body = _BANNER.sub("", _static(path), count=1)
        if "</script" in body.lower() or "</style" in body.lower():  # would end its element early
            raise RuntimeError(f"{path} cannot be inlined: it holds a closing tag")
        out.append(body)
    return out


def _licence() -> str:
    return _static("vendor/uplot/LICENSE").replace("--", "- -")  # inside an HTML comment


def _embedded(rep: report.Report) -> str | None:
    if rep.audit_export is None:
        return None
    return embed_in_html(json.dumps(rep.audit_export, ensure_ascii=False))
