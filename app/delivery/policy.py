"""What may be sent when: quiet hours, daily caps and opt-outs (the rules; ``preferences`` keeps
each address's opt-outs and counts, ``app.core.quiet_hours`` parses the periods).

Policy, in one place:

- **Warnings** (category ``warning``) ignore quiet hours and caps. They are suppressed only when
  the recipient opted out of warnings explicitly (``warning:sms``, ``warning:email`` or
  ``warning:*``). A general opt-out (an SMS reply ``TD``, an unsubscribe link in a reminder) does
  not silence safety warnings.
- **Other categories** are deferred to the end of the recipient's quiet hours (default
  ``LIFECYCLE_QUIET_HOURS`` 22:00–08:00 local time; a profile's ``preferences.quiet_hours`` such
  as ``"23:00-07:00"`` or ``"off"`` overrides it), capped per recipient, channel and local day
  (``LIFECYCLE_DAILY_CAP``; what exceeds it is suppressed and recorded), and suppressed by any
  matching opt-out.

Opt-outs are kept per address (a mobile number or an e-mail address), apart from the profile, so
a profile re-imported from its source never undoes one. Each entry is ``category:channel``, with
``*`` for any.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from app.notifications import Category

WARNING = Category.WARNING


def opted_out(entries: set[str], category: str, channel: str) -> bool:
    """Whether opt-out ``entries`` cover this category and channel, warnings only explicitly."""
    if category == WARNING:
        return bool({f"{WARNING}:{channel}", f"{WARNING}:*"} & entries)
    return bool({f"{category}:{channel}", f"{category}:*", f"*:{channel}", "*:*"} & entries)


def local_day(moment: datetime, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%Y%m%d")
