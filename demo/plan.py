"""The demo plan's calendar: 2024 plan dates moved by whole weeks to a real `today`.

Plan dates are written as 2024 "MM-DD" strings (in demo/data/ and in prose as "{MM-DD}") and moved by
whole weeks so that the day the demo is loaded falls in week 7 of the plan (the week of Monday
2024-07-15): the demo looks alive whenever it is loaded, and weekly meetings (Saturday all-hands, Friday
post-training) keep their weekday.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

from django.utils import timezone

PLAN_YEAR = 2024
PLAN_START = dt.date(2024, 6, 1)
PLAN_END = dt.date(2024, 8, 9)
PLAN_EXTENDED_END = dt.date(2024, 8, 12)
# "Today" of the demo story: Monday of week 7 of 10. A load on any day maps that day into this week.
PLAN_TODAY = dt.date(2024, 7, 15)

_PLAN_DATE_IN_TEXT = re.compile(r"\{(\d\d-\d\d)\}")


def plan_shift(today: dt.date | None = None) -> dt.timedelta:
    """Whole weeks to add to the plan's 2024 dates so that `today` falls in the week of PLAN_TODAY."""
    today = today or timezone.localdate()
    return dt.timedelta(weeks=(today - PLAN_TODAY).days // 7)


@dataclasses.dataclass(frozen=True)
class Plan:
    """The plan's calendar moved to a real `today`."""

    today: dt.date
    shift: dt.timedelta

    @classmethod
    def for_today(cls, today: dt.date | None = None) -> Plan:
        today = today or timezone.localdate()
        return cls(today=today, shift=plan_shift(today))

    @property
    def plan_today(self) -> dt.date:
        """The plan date (2024) that corresponds to the real today: one of 07-15..07-21."""
        return self.today - self.shift

    @staticmethod
    def plan_date(md: str) -> dt.date:
        month, day = md.split("-")
        return dt.date(PLAN_YEAR, int(month), int(day))

    def day(self, md: str) -> dt.date:
        """A plan date ("MM-DD" of 2024) moved to the real calendar."""
        return self.plan_date(md) + self.shift

    def at(self, md: str, hour: int = 21, minute: int = 0) -> dt.datetime:
        """A moment on a plan date in the portal's time zone (volunteers mostly work evenings)."""
        naive = dt.datetime.combine(self.day(md), dt.time(hour, minute))
        return timezone.make_aware(naive, timezone.get_current_timezone())

    def is_past(self, md: str) -> bool:
        return self.plan_date(md) < self.plan_today

    def text(self, prose: str) -> str:
        """Prose with its "{MM-DD}" plan dates moved like every other date, e.g. "since {07-10}"."""
        return _PLAN_DATE_IN_TEXT.sub(lambda match: f"{self.day(match.group(1)):%m-%d}", prose)
