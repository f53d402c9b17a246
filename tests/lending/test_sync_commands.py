"""The scontrol command lines a booking turns into (pure: no cluster needed)."""

from __future__ import annotations

import datetime as dt

from lending import sync
from lending.models import Reservation, SubteamAccount
from scheduler.models import Cluster
from tests.personas import Team

TOKYO = dt.timezone(dt.timedelta(hours=9))


def booking(team: Team, lab: Cluster, **kw: object) -> Reservation:
    return Reservation.objects.create(
        requester=team.member("member"), subteam=team.sft, cluster=lab, purpose="x", slurm_name="tanuki-5",
        start=dt.datetime(2030, 1, 7, 10, tzinfo=TOKYO), end=dt.datetime(2030, 1, 7, 13, 30, tzinfo=TOKYO), **kw,
    )  # fmt: skip


def test_gpus_become_whole_nodes_in_the_clusters_local_time(team: Team, lab: Cluster) -> None:
    lab.time_zone = "Asia/Tokyo"
    lab.save()
    r = booking(team, lab, gpus=12)
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    assert sync.reservation_fields(r, now) == [
        "starttime=2030-01-07T10:00:00", "endtime=2030-01-07T13:30:00", "partition=gpu", "nodecnt=2",
        "accounts=tanuki",
    ]  # fmt: skip
    assert sync.create_command(r, now) == (
        "scontrol create reservation reservationname=tanuki-5 starttime=2030-01-07T10:00:00 "
        "endtime=2030-01-07T13:30:00 partition=gpu nodecnt=2 accounts=tanuki && "
        "scontrol --oneliner show reservation tanuki-5"
    )


def test_named_nodes_and_mapped_accounts_in_utc(team: Team, lab: Cluster) -> None:
    SubteamAccount.objects.create(subteam=team.sft, cluster=lab, account="sft")
    SubteamAccount.objects.create(subteam=team.sft, cluster=lab, account="eval")
    r = booking(team, lab, nodes=["node3", "node4"])
    fields = sync.reservation_fields(r, dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    assert fields[:2] == ["starttime=2030-01-07T01:00:00", "endtime=2030-01-07T04:30:00"]
    assert fields[3:] == ["nodes=node3,node4", "accounts=eval,sft"]


def test_a_started_booking_is_created_from_now_and_updated_without_its_start(
    team: Team, lab: Cluster
) -> None:
    r = booking(team, lab, gpus=8)
    now = dt.datetime(2030, 1, 7, 3, 0, 0, tzinfo=dt.UTC)  # 12:00 in Tokyo: two hours in
    assert sync.reservation_fields(r, now)[0] == "starttime=2030-01-07T03:00:05"
    update = sync.update_command(r, now)
    assert "starttime" not in update and "partition" not in update
    assert update.startswith("scontrol update reservationname=tanuki-5 endtime=2030-01-07T04:30:00 nodecnt=1")


def test_the_reserved_nodes_are_read_back() -> None:
    out = "ReservationName=tanuki-5 StartTime=1 EndTime=2 Duration=01:00:00 Nodes=node[1-2] NodeCnt=2 CoreCnt=32\n"
    assert sync.parse_nodes(out) == "node[1-2]"
    assert sync.parse_nodes("") == ""
