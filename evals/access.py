"""Who may import evaluation results and add baselines.

Built on portal's primitives (`portal.access`). Results with no subteam belong to the whole project.
"""

from __future__ import annotations

from portal.access import AnyUser, may_act_in, may_act_in_any, may_lead, may_lead_any


def can_import_eval(user: AnyUser, subteam_id: int | None) -> bool:
    """Members import results for their own subteams; project-wide results (no subteam): admins."""
    return may_act_in(user, subteam_id)


def can_add_baseline(user: AnyUser, subteam_id: int | None) -> bool:
    """Baselines (reference models): a subteam's leads for it, admins for any subteam or the project."""
    return may_lead(user, subteam_id)


def may_import_evals(user: AnyUser) -> bool:
    """Whether to offer the import form at all (some subteam to import for)."""
    return may_act_in_any(user)


def may_add_baselines(user: AnyUser) -> bool:
    """Whether to offer the baseline form at all (admins, and leads of some subteam)."""
    return may_lead_any(user)
