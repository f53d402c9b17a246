"""Who may submit, cancel and resubmit jobs, save and use job templates, manage clusters and keep keys.

Built on portal's primitives (`portal.access`). Web views use the `get_*` helpers (the object, or
404/403); the API's permission classes and views call the `can_*` predicates.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from portal.access import (
    AnyUser,
    is_admin,
    is_self,
    may_act_in,
    may_act_in_any,
    may_lead,
    require,
    subteams_of,
)
from scheduler.models import Cluster, ClusterAccount, Job, JobTemplate


def can_submit_job(user: AnyUser, subteam_id: int | None) -> bool:
    """Members submit jobs for their own subteams; admins for any."""
    return may_act_in(user, subteam_id)


def may_submit_jobs(user: AnyUser) -> bool:
    """Whether to offer the submit forms at all (some subteam to submit for)."""
    return may_act_in_any(user)


def can_resubmit_job(user: AnyUser, job: Job, subteam_id: int | None = None) -> bool:
    """A copy of a job: allowed to whoever may submit for the job's subteam (and the new one, if moved)."""
    target = job.subteam_id if subteam_id is None else subteam_id
    return can_submit_job(user, job.subteam_id) and can_submit_job(user, target)


def can_cancel_job(user: AnyUser, job: Job) -> bool:
    """The owner cancels their job, a lead their subteam's, an admin any."""
    return may_lead(user, job.subteam_id) or is_self(user, job.owner_id)


def can_manage_clusters(user: AnyUser) -> bool:
    return is_admin(user)


def may_manage_account(user: AnyUser, account: ClusterAccount) -> bool:
    """A cluster account's key is kept by its member (and by admins); nobody else may replace it."""
    return is_admin(user) or is_self(user, account.member_id)


def can_test_login(user: AnyUser) -> bool:
    """Trying a member's login opens a connection as them: an admin's action."""
    return can_manage_clusters(user)


def can_save_job_template(user: AnyUser, subteam_id: int | None) -> bool:
    """Members save templates for their own subteams (the same people who may submit its jobs)."""
    return can_submit_job(user, subteam_id)


def can_use_job_template(user: AnyUser, template: JobTemplate) -> bool:
    """A template fills the form for its subteam: offered to those who may submit there."""
    return can_submit_job(user, template.subteam_id)


def can_delete_job_template(user: AnyUser, template: JobTemplate) -> bool:
    """Whoever saved it, the subteam's leads, admins."""
    return may_lead(user, template.subteam_id) or is_self(user, template.created_by_id)


def usable_templates(user: AnyUser) -> QuerySet[JobTemplate]:
    """The templates the forms offer the user: their subteams' (admins: all)."""
    templates = JobTemplate.objects.all()
    if is_admin(user):
        return templates
    return templates.filter(subteam_id__in=subteams_of(user))


# --- fetch-or-refuse helpers for web views ----------------------------------------------------------


def get_job_to_cancel(user: AnyUser, pk: object) -> Job:
    job = get_object_or_404(Job.objects.select_related("subteam", "owner"), pk=pk)
    require(can_cancel_job(user, job))
    return job


def get_account_for_key(user: AnyUser, pk: int) -> ClusterAccount:
    """A cluster account whose key the user may upload: only on a cluster that logs in with members'
    own keys (404 elsewhere: there is no key to keep), and only the member's own or, for admins, any."""
    account = get_object_or_404(
        ClusterAccount.objects.select_related("cluster", "member__user"),
        pk=pk,
        cluster__auth_mode=Cluster.AuthMode.MEMBER_KEYS,
    )
    require(may_manage_account(user, account))
    return account


def get_account_to_test(user: AnyUser, pk: int) -> ClusterAccount:
    require(can_test_login(user))
    return get_object_or_404(ClusterAccount.objects.select_related("cluster", "member"), pk=pk)


def get_template_to_use(user: AnyUser, pk: int, kind: str) -> JobTemplate:
    template = get_object_or_404(JobTemplate, pk=pk, kind=kind)
    require(can_use_job_template(user, template))
    return template


def get_template_to_delete(user: AnyUser, pk: int) -> JobTemplate:
    template = get_object_or_404(JobTemplate, pk=pk)
    require(can_delete_job_template(user, template))
    return template
