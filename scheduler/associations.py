"""Subteams are Slurm accounts: memberships become Slurm associations (user → account), a step of the
worker's cycle (`SCHEDULER_STEPS`), as the cluster's service account.

1. What the portal wants, from the database (four queries, no remote command): for every member with
   a cluster account here, an association to the Slurm account of each subteam they are in now; for
   admins, to every subteam's account (the portal lets them submit for any subteam: Slurm must too).
2. New wishes become `Association` rows being added; associations no longer wanted are marked for
   removal (only ones the portal added: a cluster admin's own are never touched).
3. Each row to change runs one `sacctmgr` (`--immediate`; "nothing new added"/"nothing deleted" count as
   done); a failure is kept on the row with the reason and retried with backoff (30 s, 1 min, … 1 h),
   never dropped. Each outcome is an `AccessEvent` (the audit trail), shown on the member's page.
4. Every `CHECK_EVERY`, `sacctmgr show associations` catches an association deleted behind the
   portal's back: it is added again.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from portal.access import admin_members
from portal.models import Membership
from scheduler import slurm
from scheduler.models import AccessEvent, Association, Cluster, ClusterAccount, SubteamAccount
from scheduler.steps import Poll

log = logging.getLogger(__name__)

CHECK_EVERY = dt.timedelta(minutes=10)
MAX_BACKOFF = dt.timedelta(hours=1)
BATCH = 50  # changes per cycle at most (a new cluster with many members catches up over a few cycles)

_last_check: dict[int, dt.datetime] = {}


def wanted(cluster: Cluster) -> dict[tuple[str, str], int]:
    """{(cluster username, Slurm account): member id} the memberships (and admins) ask for here."""
    users = dict(ClusterAccount.objects.filter(cluster=cluster).values_list("member_id", "username"))
    accounts = dict(SubteamAccount.objects.filter(cluster=cluster).values_list("subteam_id", "account"))
    result: dict[tuple[str, str], int] = {}
    for member_id, subteam_id in Membership.objects.filter(
        ended__isnull=True, member_id__in=list(users), subteam_id__in=list(accounts)
    ).values_list("member_id", "subteam_id"):
        result[(users[member_id], accounts[subteam_id])] = member_id
    for member_id in admin_members().filter(pk__in=list(users)).values_list("pk", flat=True):
        for account in accounts.values():
            result.setdefault((users[member_id], account), member_id)
    return result


def sync_associations(poll: Poll) -> None:
    cluster = poll.cluster
    if cluster.is_shared:
        return  # one user for everyone: nothing to tell apart
    now = timezone.now()
    plan(cluster, now)
    if now - _last_check.get(cluster.pk, dt.datetime.min.replace(tzinfo=dt.UTC)) > CHECK_EVERY:
        _recheck(poll, now)
        _last_check[cluster.pk] = now
    due = list(
        Association.objects.filter(cluster=cluster)
        .filter(
            Q(wanted=True, state__in=[Association.State.PENDING, Association.State.FAILED])
            | Q(wanted=False, state__in=[Association.State.REMOVING, Association.State.FAILED])
        )
        .filter(Q(next_try_at__isnull=True) | Q(next_try_at__lte=now))
        .select_related("member")[:BATCH]
    )
    for row in due:
        _apply(poll, row)


def plan(cluster: Cluster, now: dt.datetime) -> None:
    """Rows for new wishes; removals for what is no longer wanted (steps 1-2)."""
    want = wanted(cluster)
    rows = {(r.username, r.account): r for r in Association.objects.filter(cluster=cluster)}
    with transaction.atomic():
        for (username, account), member_id in want.items():
            row = rows.get((username, account))
            if row is None:
                Association.objects.create(
                    cluster=cluster, member_id=member_id, username=username, account=account, updated_at=now
                )
            elif not row.wanted:
                state = (
                    Association.State.PRESENT
                    if row.state == Association.State.REMOVING and not row.attempts
                    else Association.State.PENDING
                )
                Association.objects.filter(pk=row.pk).update(
                    wanted=True,
                    member_id=member_id,
                    state=state,
                    attempts=0,
                    next_try_at=None,
                    updated_at=now,
                )
        for key, row in rows.items():
            if row.wanted and key not in want:
                Association.objects.filter(pk=row.pk).update(
                    wanted=False,
                    state=Association.State.REMOVED
                    if row.state == Association.State.PENDING and not row.attempts
                    else Association.State.REMOVING,
                    attempts=0,
                    next_try_at=None,
                    updated_at=now,
                )


def _recheck(poll: Poll, now: dt.datetime) -> None:
    """Present rows that Slurm no longer has are added again (step 4)."""
    result = poll.conn.run(slurm.show_associations_command())
    if not result.ok:
        log.warning("sacctmgr show associations on %s: %s", poll.cluster, result.stderr.strip()[:300])
        return
    actual = slurm.parse_associations(result.stdout)
    for row in Association.objects.filter(cluster=poll.cluster, wanted=True, state=Association.State.PRESENT):
        if (row.username, row.account) not in actual:
            Association.objects.filter(pk=row.pk).update(state=Association.State.PENDING, updated_at=now)


def _apply(poll: Poll, row: Association) -> None:
    command = (
        slurm.add_association_command(row.username, row.account)
        if row.wanted
        else slurm.remove_association_command(row.username, row.account)
    )
    result = poll.conn.run(command)
    output = (result.stdout + "\n" + result.stderr).strip()
    now = timezone.now()
    # "Nothing new added"/"Nothing deleted" with nothing on stderr: it was already so.
    if result.ok or (slurm.association_unchanged(result.stdout) and not result.stderr.strip()):
        state, kind = (
            (Association.State.PRESENT, AccessEvent.Kind.ASSOCIATION_ADDED)
            if row.wanted
            else (Association.State.REMOVED, AccessEvent.Kind.ASSOCIATION_REMOVED)
        )
        with transaction.atomic():
            Association.objects.filter(pk=row.pk, wanted=row.wanted).update(
                state=state, attempts=0, last_error="", next_try_at=None, updated_at=now
            )
            AccessEvent.objects.create(
                cluster=poll.cluster, member=row.member, kind=kind, message=f"{row.username} → {row.account}"
            )
        poll.stats.transitions += 1
        return
    attempts = row.attempts + 1
    error = (output or f"sacctmgr exited {result.exit_status}")[:500]
    delay = min(MAX_BACKOFF, dt.timedelta(seconds=30 * 2 ** (attempts - 1)))
    log.warning("sacctmgr for %s → %s on %s failed: %s", row.username, row.account, poll.cluster, error)
    with transaction.atomic():
        Association.objects.filter(pk=row.pk, wanted=row.wanted).update(
            state=Association.State.FAILED,
            attempts=attempts,
            last_error=error,
            next_try_at=now + delay,
            updated_at=now,
        )
        if error != row.last_error:
            AccessEvent.objects.create(
                cluster=poll.cluster,
                member=row.member,
                kind=AccessEvent.Kind.ASSOCIATION_FAILED,
                message=f"{'add' if row.wanted else 'remove'} {row.username} → {row.account}: {error}"[:500],
            )
