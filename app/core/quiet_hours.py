"""Quiet hours: a period of the local day, possibly across midnight ("22:00-08:00").

In the core because both the settings (``LIFECYCLE_QUIET_HOURS``, checked when they load) and the
delivery policy (a profile's own ``preferences.quiet_hours``) read them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from app.core.errors import ConfigError

_QUIET = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})")


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time

    def end_if_quiet(self, moment: datetime) -> datetime | None:
        """When the quiet period containing ``moment`` (aware, local) ends; None if not quiet."""
        now = moment.timetz().replace(tzinfo=None)
        crosses_midnight = self.start > self.end
        quiet = (
            (now >= self.start or now < self.end)
            if crosses_midnight
            else self.start <= now < self.end
        )
        if not quiet:
            return None
        end = datetime.combine(moment.date(), self.end, tzinfo=moment.tzinfo)
        return end if end > moment else end + timedelta(days=1)


def parse_quiet_hours(text: str | None, where: str = "quiet_hours") -> QuietHours | None:
    """``"22:00-08:00"`` → QuietHours; ``"off"``, ``""`` or None → no quiet hours."""
    if text is None or text.strip().lower() in ("", "off", "none"):
        return None
    match = _QUIET.fullmatch(text.strip())
    if not match:
        raise ConfigError(f"{where}: {text!r} is not HH:MM-HH:MM")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59 or (h1, m1) == (h2, m2):
        raise ConfigError(f"{where}: {text!r} is not a period of the day")
    return QuietHours(time(h1, m1), time(h2, m2))
