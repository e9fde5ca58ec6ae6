"""Quiet hours: tests and drills are not sent at night (IntakeConfig.quiet_start..quiet_end, local
time of SIRENA_TIMEZONE or of a schedule's zone) unless an operator gives a reason, which is audited
with the alert. Live alerts ignore them: an emergency has no quiet hours.

Checked by `lifecycle.compose` for every interface (console, API, e-mail, CAP, CLI) and by the
schedules for each occurrence.
"""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from alerting.base.errors import InvalidInput
from alerting.base.intake_config import IntakeConfig
from alerting.base.models import AlertMode


def in_quiet_hours(moment: datetime, tz: ZoneInfo, config: IntakeConfig) -> bool:
    """True when `moment`, in `tz`, falls in the quiet window (which may wrap midnight)."""
    local: time = moment.astimezone(tz).time().replace(tzinfo=None)
    start, end = config.quiet_start, config.quiet_end
    return start <= local < end if start < end else (local >= start or local < end)


def check_quiet_hours(mode: AlertMode, moment: datetime, tz: ZoneInfo, config: IntakeConfig,
                      override_reason: str | None) -> None:
    """Refuse a test or drill at `moment` inside quiet hours without an override reason (InvalidInput)."""
    if mode is AlertMode.LIVE or (override_reason and override_reason.strip()):
        return
    if in_quiet_hours(moment, tz, config):
        local = moment.astimezone(tz)
        raise InvalidInput(f"{local:%Y-%m-%d %H:%M} {tz.key} is inside quiet hours "
                           f"({config.quiet_start:%H:%M}-{config.quiet_end:%H:%M}) for tests and drills; "
                           "choose another time or give an override reason",
                           fields={"scheduled_at": "inside quiet hours for tests and drills"})
