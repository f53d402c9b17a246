"""Bookings become Slurm reservations on the real dev cluster, jobs in the window run inside them,
and cancelling deletes them. Each test deletes its reservations by name at the end."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator

import pytest
from django.utils import timezone

from lending import services, sync
from lending.models import KeptReservation, Reservation
from scheduler import services as job_services
from scheduler import slurm
from scheduler.identity import service_connection as connection_for
from scheduler.models import Cluster, Job, SubteamAccount
from scheduler.slurm import parse_oneliner
from scheduler.steps import CycleStats, Poll
from scheduler.worker import Worker
from tests.lending.conftest import soon
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
    assert not r.on_cluster and r.sync_state == "create"
    assert r.sync_error == "create: Invalid account or account/partition combination specified"
    assert r.is_not_enforced and r.sync_attempts == 1 and r.events.filter(kind="not_enforced").exists()
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
    assert not fresh(r).is_not_enforced and not fresh(r).events.filter(kind="enforced").exists()


def sync_once(cluster: Cluster, worker: Worker) -> int:
    """The worker's reservation step once, as the service account; the commands it ran."""
    conn = worker.pool.connect((cluster.pk, cluster.username), connection_for(cluster))
    before = conn.commands_run
    sync.sync_reservations(Poll(cluster, conn, "test", CycleStats(cluster.name)))
    return conn.commands_run - before


def two_bookings_on_one_node(
    team: Team, cluster: Cluster, worker: Worker, booked_names: list[str]
) -> tuple[Reservation, Reservation]:
    """The measured case: A (8 GPUs) tomorrow, B (8 GPUs) the day after, each reserved by count: Slurm
    puts both on the same node (it is free on either day)."""
    worker.cycle()  # the inventory
    a, b = (
        services.request_reservation(
            team.member("member"), subteam=team.sft, cluster=cluster, gpus=8, purpose=purpose,
            start=soon(hours), end=soon(hours + 2),
        )
        for purpose, hours in (("a", 24), ("b", 48))
    )  # fmt: skip
    for r in (a, b):
        services.approve(team.member("admin"), r)
        r.refresh_from_db()
        booked_names.append(r.slurm_name)
    assert sync_once(cluster, worker) == 2
    a, b = fresh(a), fresh(b)
    assert a.on_cluster and b.on_cluster and a.sync_state == b.sync_state == "synced"
    assert a.slurm_nodes == b.slurm_nodes, "Slurm put the two bookings on different nodes"
    return a, b


def test_a_move_slurm_refuses_to_update_is_recreated_on_a_free_node_in_one_cycle(
    team: Team, cluster: Cluster, worker: Worker, remote: Remote, booked_names: list[str]
) -> None:
    a, b = two_bookings_on_one_node(team, cluster, worker, booked_names)
    services.change_window(team.member("member"), a, start=b.start, end=b.end)  # the portal has room

    assert sync_once(cluster, worker) == 2  # the refused update, then delete ; create ; show ; show
    old_name, a = a.slurm_name, fresh(a)
    booked_names.append(a.slurm_name)
    assert a.slurm_name != old_name and show(remote, old_name) == {} and not a.kept.exists()
    assert (a.on_cluster, a.sync_state, a.sync_error, a.not_enforced_since) == (True, "synced", "", None)
    shown = show(remote, a.slurm_name)
    assert (int(shown["StartTime"]), int(shown["EndTime"])) == (
        int(b.start.timestamp()),
        int(b.end.timestamp()),
    )
    assert shown["NodeCnt"] == "1" and shown["Nodes"] == a.slurm_nodes != b.slurm_nodes
    assert shown["Accounts"] == "sft"
    recreated = a.events.get(kind="slurm_recreate")
    assert "update: Requested reservation overlaps with another reservation" in recreated.note
    assert not a.events.filter(kind="not_enforced").exists()
    assert sync_once(cluster, worker) == 0  # converged: nothing more to do


def test_with_no_free_node_the_booking_is_not_enforced_and_retried_with_backoff_until_it_is(
    team: Team, cluster: Cluster, worker: Worker, remote: Remote, booked_names: list[str]
) -> None:
    a, b = two_bookings_on_one_node(team, cluster, worker, booked_names)
    # Someone else's reservation (the portal does not know it) takes the other nodes on B's day.
    others = sorted(
        set(cluster.nodes.values_list("name", flat=True)) - set(slurm.expand_hostlist(b.slurm_nodes))
    )
    wall = slurm.ReservationSpec(
        name=f"{a.slurm_name}-wall", start=b.start, end=b.end, tz=cluster.tz, partition="gpu",
        nodes=tuple(others), accounts=("tanuki",),
    )  # fmt: skip
    booked_names.append(wall.name)
    assert remote.run(*slurm.create_reservation_commands(wall)[0]).ok
    services.change_window(team.member("member"), a, start=b.start, end=b.end)

    assert sync_once(cluster, worker) == 2
    a = fresh(a)
    assert (a.on_cluster, a.sync_state, a.slurm_nodes, a.sync_attempts) == (False, "create", "", 1)
    assert a.is_not_enforced and a.sync_retry_at is not None and a.sync_attempted_at is not None
    assert a.sync_retry_at - a.sync_attempted_at == dt.timedelta(minutes=2)
    assert a.sync_error.startswith("update: Requested reservation overlaps with another reservation; ")
    assert a.sync_error.endswith("create: Requested nodes are busy")
    [event] = a.events.filter(kind="not_enforced")
    assert event.note == a.sync_error and event.changes["attempts"] == 1
    assert show(remote, a.slurm_name) == {}  # deleted, not made anew: Slurm holds nothing for it

    assert sync_once(cluster, worker) == 0  # before its retry time nothing runs
    Reservation.objects.filter(pk=a.pk).update(sync_retry_at=timezone.now())  # two minutes later
    assert sync_once(cluster, worker) == 1  # a create
    a = fresh(a)
    assert (a.sync_attempts, a.sync_error) == (2, "create: Requested nodes are busy")
    assert a.sync_retry_at - a.sync_attempted_at == dt.timedelta(minutes=4)  # type: ignore[operator]
    assert a.events.filter(kind="not_enforced").count() == 1

    assert remote.run(*slurm.delete_reservation_command(wall.name)).ok  # a node comes free
    Reservation.objects.filter(pk=a.pk).update(sync_retry_at=timezone.now())
    assert sync_once(cluster, worker) == 1
    a = fresh(a)
    assert (a.on_cluster, a.sync_state, a.sync_attempts, a.not_enforced_since) == (True, "synced", 0, None)
    assert int(show(remote, a.slurm_name)["StartTime"]) == int(b.start.timestamp())
    assert list(a.events.values_list("kind", flat=True))[-2:] == ["slurm_create", "enforced"]


def test_a_booking_with_a_running_job_is_moved_under_a_new_name_and_the_job_runs_on(
    team: Team,
    cluster: Cluster,
    worker: Worker,
    run_until: Callable[..., None],
    remote: Remote,
    booked_names: list[str],
) -> None:
    """Slurm refuses the in-place update (the new end runs into another reservation on the node) and
    the delete (a job runs in the reservation): the booking is made anew under a new name on a free
    node, the old reservation is kept until its job ends, then deleted."""
    worker.cycle()  # the inventory
    now = timezone.now()
    r = services.request_reservation(
        team.member("member"), subteam=team.sft, cluster=cluster, gpus=8, purpose="in use",
        start=now, end=now + dt.timedelta(minutes=6),
    )  # fmt: skip
    services.approve(team.member("admin"), r)
    r.refresh_from_db()
    old_name = r.slurm_name
    booked_names.append(old_name)
    assert sync_once(cluster, worker) == 1
    r = fresh(r)
    assert r.on_cluster and r.sync_state == "synced" and r.slurm_nodes
    job = job_services.submit_job(
        team.member("member"),
        job_services.JobSpec(
            subteam=team.sft, cluster=cluster, name="runs-on", command="sleep 40", time_limit_minutes=2
        ),
    )
    assert f"#SBATCH --reservation={old_name}\n" in job.script
    run_until(lambda: Job.objects.get(pk=job.pk).state == Job.State.RUNNING, timeout=60)
    # Someone else's reservation (the portal does not know it) holds the node right after the booking.
    wall = slurm.ReservationSpec(
        name=f"{old_name}-wall", start=r.end, end=r.end + dt.timedelta(minutes=5), tz=cluster.tz,
        partition="gpu", nodes=(r.slurm_nodes,), accounts=("tanuki",),
    )  # fmt: skip
    booked_names.append(wall.name)
    assert remote.run(*slurm.create_reservation_commands(wall)[0]).ok
    later = r.end + dt.timedelta(minutes=4)
    services.change_window(team.member("member"), r, start=r.start, end=later)

    assert sync_once(cluster, worker) == 2  # the refused update, then delete ; create ; show ; show
    r = fresh(r)
    booked_names.append(r.slurm_name)
    assert r.slurm_name != old_name and r.slurm_name.startswith(f"tanuki-{r.pk}-")
    assert (r.on_cluster, r.sync_state, r.sync_error, r.not_enforced_since) == (True, "synced", "", None)
    shown = show(remote, r.slurm_name)
    assert int(shown["EndTime"]) == int(later.timestamp()) and shown["Accounts"] == "sft"
    assert shown["Nodes"] == r.slurm_nodes != wall.nodes[0]
    kept = r.kept.get()
    assert (kept.name, kept.nodes, kept.attempts) == (old_name, wall.nodes[0], 0)
    assert show(remote, old_name)["Nodes"] == wall.nodes[0]  # as it was: not shortened
    assert kept.retry_at <= kept.ends_at and int(kept.ends_at.timestamp()) == int(wall.start.timestamp())
    moved = r.events.get(kind="slurm_recreate")
    assert "overlaps with another reservation" in moved.note
    assert moved.changes == {"nodes": r.slurm_nodes, "name": r.slurm_name, "kept": old_name}
    assert not r.events.filter(kind="not_enforced").exists()
    after = job_services.submit_job(
        team.member("member"),
        job_services.JobSpec(
            subteam=team.sft, cluster=cluster, name="after-move", command="hostname", time_limit_minutes=1
        ),
    )
    assert f"#SBATCH --reservation={r.slurm_name}\n" in after.script  # the subteam's next job: the new one

    # While the job runs, the kept reservation's delete is refused and tried again after a pause.
    KeptReservation.objects.filter(pk=kept.pk).update(retry_at=timezone.now())
    assert sync_once(cluster, worker) == 1
    kept.refresh_from_db()
    assert kept.attempts == 1 and "in use" in kept.last_error
    assert kept.retry_at - timezone.now() > dt.timedelta(minutes=1)
    assert Job.objects.get(pk=job.pk).state == Job.State.RUNNING

    run_until(lambda: Job.objects.get(pk=job.pk).is_terminal, timeout=90)
    assert Job.objects.get(pk=job.pk).state == Job.State.COMPLETED  # it ran to its end
    KeptReservation.objects.filter(pk=kept.pk).update(retry_at=timezone.now())
    assert sync_once(cluster, worker) == 1
    assert not r.kept.exists() and show(remote, old_name) == {}
    assert fresh(r).events.filter(kind="slurm_delete_kept", note=old_name).exists()
    assert sync_once(cluster, worker) == 0  # nothing more to do
