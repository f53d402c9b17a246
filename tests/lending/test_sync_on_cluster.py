"""Bookings become Slurm reservations on the real dev cluster, jobs in the window run inside them,
and cancelling deletes them. Each test deletes its reservations by name at the end."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator

import pytest
from django.utils import timezone

from lending import services, sync
from lending.models import Reservation
from scheduler import services as job_services
from scheduler import slurm
from scheduler.identity import service_connection as connection_for
from scheduler.models import Cluster, Job, SubteamAccount
from scheduler.slurm import parse_oneliner
from scheduler.steps import CycleStats, Poll
from scheduler.worker import Worker
from tests.personas import Team
from tests.scheduler.conftest import Remote


@pytest.fixture
def booked_names(remote: Remote) -> Iterator[list[str]]:
    """Names of the reservations a test makes; deleted on the cluster at teardown, whatever happened."""
    names: list[str] = []
    yield names
    for name in names:
        remote.run(*slurm.delete_reservation_command(name))


def show(remote: Remote, name: str) -> dict[str, str]:
    result = remote.run(*slurm.show_reservation_command(name))
    return parse_oneliner(result.stdout.strip()) if result.ok else {}


def fresh(r: Reservation) -> Reservation:
    return Reservation.objects.get(pk=r.pk)


def test_an_approved_booking_is_reserved_used_by_the_subteams_job_and_deleted_on_cancel(
    team: Team,
    cluster: Cluster,
    worker: Worker,
    run_until: Callable[..., None],
    remote: Remote,
    booked_names: list[str],
) -> None:
    worker.cycle()  # the inventory: nodes and partitions
    assert cluster.nodes.count() == 4
    assert SubteamAccount.objects.get(subteam=team.sft, cluster=cluster).account == "sft"
    now = timezone.now()
    r = services.request_reservation(
        team.member("member"), subteam=team.sft, cluster=cluster, gpus=8, purpose="e2e",
        start=now, end=now + dt.timedelta(minutes=6),
    )  # fmt: skip
    services.approve(team.member("admin"), r)
    r.refresh_from_db()
    booked_names.append(r.slurm_name)
    assert re.fullmatch(rf"tanuki-{r.pk}-[0-9a-f]{{6}}", r.slurm_name)

    run_until(lambda: fresh(r).on_cluster and fresh(r).sync_state == "synced", timeout=60)
    r.refresh_from_db()
    assert r.sync_error == "" and r.state in ("approved", "active")
    shown = show(remote, r.slurm_name)
    assert shown["Accounts"] == "sft" and shown["NodeCnt"] == "1" and shown["PartitionName"] == "gpu"
    assert shown["Nodes"] == r.slurm_nodes and r.slurm_nodes.startswith("node")
    assert int(shown["EndTime"]) == int(r.end.timestamp())
    assert abs(int(shown["StartTime"]) - r.start.timestamp()) < 30  # from now on (Slurm refuses the past)

    job = job_services.submit_job(
        team.member("member"),
        job_services.JobSpec(
            subteam=team.sft, cluster=cluster, name="in-window", command="hostname", time_limit_minutes=2
        ),
    )
    assert f"#SBATCH --reservation={r.slurm_name}\n" in job.script
    other = job_services.submit_job(
        team.member("other"),
        job_services.JobSpec(
            subteam=team.pretrain, cluster=cluster, name="not-mine", command="true", time_limit_minutes=2
        ),
    )
    assert "--reservation" not in other.script
    run_until(lambda: Job.objects.get(pk=job.pk).is_terminal, timeout=120)
    job.refresh_from_db()
    assert job.state == Job.State.COMPLETED and job.node_list == r.slurm_nodes

    later = r.end + dt.timedelta(minutes=2)
    services.change_window(team.member("member"), r, start=r.start, end=later)
    run_until(lambda: fresh(r).sync_state == "synced", timeout=60)
    assert int(show(remote, r.slurm_name)["EndTime"]) == int(later.timestamp())

    services.cancel(team.member("lead"), fresh(r))
    run_until(lambda: not fresh(r).on_cluster and fresh(r).sync_state == "synced", timeout=60)
    assert show(remote, r.slurm_name) == {}
    assert [e for e in fresh(r).events.values_list("kind", flat=True) if e.startswith("slurm_")] == [
        "slurm_create", "slurm_update", "slurm_delete",
    ]  # fmt: skip


def test_a_refused_reservation_records_the_error_and_a_quiet_cycle_runs_nothing(
    team: Team, cluster: Cluster, worker: Worker, remote: Remote, booked_names: list[str]
) -> None:
    worker.cycle()
    now = timezone.now()
    r = services.request_reservation(
        team.member("member"), subteam=team.sft, cluster=cluster, nodes=["node4"], purpose="bad account",
        start=now, end=now + dt.timedelta(minutes=3),
    )  # fmt: skip
    SubteamAccount.objects.filter(subteam=team.sft, cluster=cluster).update(account="no-such-account")
    services.approve(team.member("admin"), r)
    booked_names.append(r.slurm_name)
    conn = worker.pool.connect((cluster.pk, cluster.username), connection_for(cluster))
    before = conn.commands_run
    sync.sync_reservations(Poll(cluster, conn, "test", CycleStats(cluster.name)))
    r.refresh_from_db()
    assert conn.commands_run - before == 1
    assert not r.on_cluster and r.sync_state == "create" and "exited" in r.sync_error
    assert show(remote, r.slurm_name) == {}
    before = conn.commands_run
    sync.sync_reservations(
        Poll(cluster, conn, "test", CycleStats(cluster.name))
    )  # within the retry pause: nothing remote
    assert conn.commands_run == before
    services.cancel(team.member("member"), r)
    sync.sync_reservations(
        Poll(cluster, conn, "test", CycleStats(cluster.name))
    )  # never created: nothing to delete
    assert conn.commands_run == before and fresh(r).sync_state == "synced"
