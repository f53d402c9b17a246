"""Who may do what with data sets and sweeps (built on portal.access's primitives).

Every signed-in member reads data sets, sweeps, lineage and comparisons (the team works in the open,
as with jobs and the leaderboard); registering a data set and submitting a sweep are for the members
of the subteam it is for (admins: any), as submitting a job is.
"""

from __future__ import annotations

from portal.access import AnyUser, may_act_in, may_act_in_any
from scheduler import access as scheduler_access


def can_register_dataset(user: AnyUser, subteam_id: int | None) -> bool:
    return may_act_in(user, subteam_id)


def may_register_datasets(user: AnyUser) -> bool:
    return may_act_in_any(user)


def can_submit_sweep(user: AnyUser, subteam_id: int | None) -> bool:
    return scheduler_access.can_submit_job(user, subteam_id)


def may_submit_sweeps(user: AnyUser) -> bool:
    return scheduler_access.may_submit_jobs(user)
