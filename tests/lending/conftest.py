"""A cluster row with an inventory (no SSH: services and pages read only the database), and the real
dev cluster's fixtures for the end-to-end sync tests."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from scheduler.models import Cluster, Node
from tests.personas import Team
from tests.scheduler.conftest import cluster, devcluster_info, remote, run_until, worker  # noqa: F401

HOUR = dt.timedelta(hours=1)


def make_cluster(name: str = "lab", nodes: int = 4, drained: tuple[str, ...] = ()) -> Cluster:
    c = Cluster.objects.create(
        name=name,
        host="127.0.0.1",
        port=1,
        username="tanuki",
        work_dir="/home/tanuki/runs",
        default_account="tanuki",
    )
    for i in range(1, nodes + 1):
        node = f"node{i}"
        Node.objects.create(
            cluster=c,
            name=node,
            state="IDLE+DRAIN" if node in drained else "IDLE",
            reason="disk check" if node in drained else "",
            partitions="gpu",
            gpus_total=8,
            unavailable=node in drained,
        )
    return c


@pytest.fixture
def lab(db: None) -> Cluster:
    return make_cluster()


# Fixed once for the run, so that two calls in one test agree even across an hour's turn.
_BASE = timezone.now().replace(minute=0, second=0, microsecond=0) + HOUR


def soon(hours: float = 1) -> dt.datetime:
    """A whole hour `hours` after the next full hour (bookings in tests start in the future)."""
    return _BASE + dt.timedelta(hours=hours)


@pytest.fixture
def book(team: Team, lab: Cluster):  # type: ignore[no-untyped-def]
    """Book as a role: book("member", gpus=8, hours=(1, 3)) -> Reservation."""
    from lending import services

    def make(role: str = "member", *, hours: tuple[float, float] = (1, 3), subteam=None, on=None, **kw):  # type: ignore[no-untyped-def]
        kw.setdefault("purpose", "sft eval")
        if "gpus" not in kw and "nodes" not in kw:
            kw["gpus"] = 8
        return services.request_reservation(
            team.member(role),
            subteam=subteam or (team.pretrain if role == "other" else team.sft),
            cluster=on or lab,
            start=soon(hours[0]),
            end=soon(hours[1]),
            **kw,
        )

    return make
