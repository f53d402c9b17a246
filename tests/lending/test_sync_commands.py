"""What a booking asks of Slurm's reservation commands, and what sync makes of their recorded output
(no cluster needed). The commands themselves are `scheduler.slurm`'s (test_slurm_parsers.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from lending import services, sync
from lending.models import Reservation
from scheduler import services as scheduler_services
from scheduler import slurm, ssh
from scheduler.models import Cluster, SubteamAccount
from scheduler.steps import CycleStats, Poll
from tests.personas import Team

TOKYO = dt.timezone(dt.timedelta(hours=9))
RECORDED = Path(__file__).resolve().parents[1] / "scheduler" / "recorded"


def booking(team: Team, lab: Cluster, **kw: object) -> Reservation:
    return Reservation.objects.create(
        requester=team.member("member"), subteam=team.sft, cluster=lab, purpose="x", slurm_name="tanuki-5",
        start=dt.datetime(2030, 1, 7, 10, tzinfo=TOKYO), end=dt.datetime(2030, 1, 7, 13, 30, tzinfo=TOKYO), **kw,
    )  # fmt: skip


def fields(r: Reservation, now: dt.datetime) -> list[str]:
    return slurm.reservation_fields(sync.reservation_spec(r, now))


def test_gpus_become_whole_nodes_in_the_clusters_local_time(team: Team, lab: Cluster) -> None:
    lab.time_zone = "Asia/Tokyo"
    lab.save()
    r = booking(team, lab, gpus=12)
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    assert fields(r, now) == [
        "starttime=2030-01-07T10:00:00", "endtime=2030-01-07T13:30:00", "partition=gpu", "nodecnt=2",
        "accounts=tanuki",
    ]  # fmt: skip
    assert sync.create_command(r, now) == (
        "scontrol create reservation reservationname=tanuki-5 starttime=2030-01-07T10:00:00 "
        "endtime=2030-01-07T13:30:00 partition=gpu nodecnt=2 accounts=tanuki && "
        "env SLURM_TIME_FORMAT=%s scontrol --oneliner show reservation tanuki-5"
    )


def test_named_nodes_and_mapped_accounts_in_utc(team: Team, lab: Cluster) -> None:
    SubteamAccount.objects.create(subteam=team.sft, cluster=lab, account="sft")
    r = booking(team, lab, nodes=["node3", "node4"])
    words = fields(r, dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    assert words[:2] == ["starttime=2030-01-07T01:00:00", "endtime=2030-01-07T04:30:00"]
    assert words[3:] == ["nodes=node3,node4", "accounts=sft"]


def test_a_started_booking_is_created_from_now_and_updated_without_its_start(
    team: Team, lab: Cluster
) -> None:
    r = booking(team, lab, gpus=8)
    now = dt.datetime(2030, 1, 7, 3, 0, 0, tzinfo=dt.UTC)  # 12:00 in Tokyo: two hours in
    assert fields(r, now)[0] == "starttime=2030-01-07T03:00:05"
    update = sync.update_command(r, now)
    assert "starttime" not in update and "partition" not in update
    assert update.startswith("scontrol update reservationname=tanuki-5 endtime=2030-01-07T04:30:00 nodecnt=1")


def test_without_an_account_the_subteams_own_cluster_users_are_admitted(team: Team, lab: Cluster) -> None:
    lab.default_account = ""
    lab.save()
    r = booking(team, lab, gpus=8)
    assert fields(r, dt.datetime(2030, 1, 1, tzinfo=dt.UTC))[-1] == "users=tanuki"  # nobody has one yet
    for role in ("lead", "member", "other"):
        scheduler_services.set_cluster_account(None, team.member(role), lab, f"tk-{role}")
    assert fields(r, dt.datetime(2030, 1, 1, tzinfo=dt.UTC))[-1] == "users=tk-lead,tk-member"  # not other's
    lab.auth_mode = Cluster.AuthMode.SHARED
    lab.save()
    r.cluster.refresh_from_db()
    assert fields(r, dt.datetime(2030, 1, 1, tzinfo=dt.UTC))[-1] == "users=tanuki"


class RecordedConnection:
    """Answers each command with the next recorded result, and keeps the command lines it was given."""

    def __init__(self, *results: tuple[int, str, str]) -> None:
        self.results = list(results)
        self.commands: list[str] = []

    def run(self, argv: list[str]) -> ssh.CommandResult:
        return self.run_shell(ssh.quote_command(argv))

    def run_shell(self, command: str) -> ssh.CommandResult:
        self.commands.append(command)
        status, stdout, stderr = self.results.pop(0)
        return ssh.CommandResult(command, status, stdout, stderr)


def run_sync(lab: Cluster, conn: RecordedConnection) -> None:
    """The worker's reservation step on one visit, over the recorded connection."""
    sync.sync_reservations(Poll(lab, conn, "test", CycleStats(lab.name)))  # type: ignore[arg-type]


def test_sync_records_the_nodes_slurm_picked_and_a_reservation_already_gone_counts_as_deleted(
    team: Team, lab: Cluster, book: Any
) -> None:
    r = book("member", gpus=16)
    services.approve(team.member("admin"), r)
    r.refresh_from_db()
    created = (RECORDED / "reservation_create.txt").read_text().replace("rec-by-count", r.slurm_name)
    conn = RecordedConnection((0, created, ""))
    run_sync(lab, conn)
    r.refresh_from_db()
    assert conn.commands[0].startswith(f"scontrol create reservation reservationname={r.slurm_name} ")
    assert (r.on_cluster, r.sync_state, r.slurm_nodes, r.sync_error) == (True, "synced", "node[1-2]", "")

    services.cancel(team.member("member"), r)
    missing = (RECORDED / "reservation_delete_missing.txt").read_text().replace("rec-by-count", r.slurm_name)
    conn = RecordedConnection((1, "", missing))
    run_sync(lab, conn)
    r.refresh_from_db()
    assert conn.commands == [f"scontrol delete reservationname={r.slurm_name}"]
    assert (r.on_cluster, r.sync_state, r.sync_error) == (False, "synced", "")


def test_a_refused_delete_is_recorded_and_retried(team: Team, lab: Cluster, book: Any) -> None:
    r = book("member", gpus=8)
    services.approve(team.member("admin"), r)
    Reservation.objects.filter(pk=r.pk).update(on_cluster=True, sync_state="synced")
    services.cancel(team.member("member"), Reservation.objects.get(pk=r.pk))
    run_sync(lab, RecordedConnection((1, "", "delete_reservation: Access/permission denied\n")))
    r.refresh_from_db()
    assert r.on_cluster and r.sync_state == "delete" and "permission denied" in r.sync_error
