"""Which subteams need attention: the flag on each overview card and the order of the cards.

The rule, the one the overview's legend states:

1. **Behind** (red): a milestone of the subteam is past its date and not done, or one of its open goals
   (on track or at risk) is past its due date.
2. **At risk** (orange): not behind, but a goal is marked at risk, or `BLOCKED_TASKS_FLAG` or more of its
   tasks are blocked. One blocked task is ordinary work in progress: it is counted on the card, not
   flagged.
3. **On track** (green): neither.

Cards are ordered worst first: by level, then by how much is late (overdue milestones and goals), then by
goals at risk, then by blocked tasks, then by name.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _

BLOCKED_TASKS_FLAG = 2


class Level(enum.IntEnum):
    OK = 0
    RISK = 1
    BEHIND = 2

    @property
    def css(self) -> str:
        return {Level.OK: "ok", Level.RISK: "risk", Level.BEHIND: "behind"}[self]

    @property
    def label(self) -> str:
        labels = {Level.OK: _("On track"), Level.RISK: _("At risk"), Level.BEHIND: _("Behind")}
        return str(labels[self])


@dataclass(frozen=True)
class Health:
    """A subteam's counts that matter for the flag, and the flag they give."""

    overdue_milestones: int = 0
    overdue_goals: int = 0
    goals_at_risk: int = 0
    blocked_tasks: int = 0

    @property
    def level(self) -> Level:
        if self.overdue_milestones or self.overdue_goals:
            return Level.BEHIND
        if self.goals_at_risk or self.blocked_tasks >= BLOCKED_TASKS_FLAG:
            return Level.RISK
        return Level.OK

    @property
    def blocked_flags(self) -> bool:
        """Whether the blocked tasks are enough to count toward the flag (shown in warning colour)."""
        return self.blocked_tasks >= BLOCKED_TASKS_FLAG

    def sort_key(self, name: str) -> tuple[int, int, int, int, str]:
        """Worst first when sorted ascending."""
        late = self.overdue_milestones + self.overdue_goals
        return (-self.level, -late, -self.goals_at_risk, -self.blocked_tasks, name.casefold())
