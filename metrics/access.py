"""Who may read a job's training metrics and watch a subteam's live runs.

Built on portal's primitives (`portal.access`); the API and the websocket consumers ask these.
"""

from __future__ import annotations

from portal.access import AnyUser
from portal.models import Subteam
from scheduler.models import Job


def _signed_in(user: AnyUser) -> bool:
    return bool(user.is_authenticated and user.is_active)


def can_see_metrics(user: AnyUser, job: Job) -> bool:
    """A job's training metrics are read like the job itself: by anyone signed in."""
    return _signed_in(user)


def can_watch_subteam_runs(user: AnyUser, subteam: Subteam) -> bool:
    """The subteam dashboard's live runs panel: anyone signed in, like the dashboard."""
    return _signed_in(user)
