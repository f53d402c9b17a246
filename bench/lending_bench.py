"""Lending list benchmarks (DEVCLUSTER_INSTANCE=test scripts/devcluster up first for part 2; run as root).

    .venv/bin/python bench/lending_bench.py          # writes bench/results/lending.md

1. `availability()` over a 2-week window with 500 approved bookings (and over one day, as the
   form's preview asks), on a 64-node inventory; median of repeated runs, in ms.
2. Remote commands per worker cycle on the dev cluster: idle (nothing to sync), then with 5 new
   approved bookings (create), then with those 5 cancelled (delete), then idle again. The bookings
   are tomorrow, so they hold no node now; all are deleted by name at the end. The admin is the dev
   cluster's bench user `tk-u0` and Management its Slurm account `management` (bench/devcluster.py).
"""

from __future__ import annotations

import datetime as dt
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DB = Path(tempfile.gettempdir()) / "tanuki-lending-bench.sqlite3"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
os.environ["DATABASE_URL"] = f"sqlite:///{DB}"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.devcluster import give_accounts, register_cluster  # noqa: E402
from lending import services, sync  # noqa: E402
from lending.models import Reservation  # noqa: E402
from scheduler import ssh  # noqa: E402
from scheduler.identity import service_connection as connection_for  # noqa: E402
from scheduler.models import Cluster, Node  # noqa: E402
from scheduler.steps import Poll  # noqa: E402
from scheduler.worker import Worker  # noqa: E402
from tests.personas import make_team  # noqa: E402
from tests.scheduler.conftest import STATE_DIR  # noqa: E402 - the tests' instance, never the demo's

RESULTS = ROOT / "bench" / "results"


def timed(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    runs = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - began) * 1000)
    return statistics.median(runs)


def bench_availability(team) -> list[str]:  # type: ignore[no-untyped-def]
    cluster = Cluster.objects.create(name="bench", host="127.0.0.1", username="x", work_dir="/home/x")
    Node.objects.bulk_create(
        Node(cluster=cluster, name=f"node{i}", state="IDLE", partitions="gpu", gpus_total=8)
        for i in range(64)
    )
    rng = random.Random(7)  # noqa: S311 - reproducible test data, not secrets
    start = timezone.now().replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    rows = []
    for i in range(500):
        begin = start + dt.timedelta(hours=rng.randrange(0, 14 * 24 - 12))
        rows.append(
            Reservation(
                requester=team.member("member"),
                subteam=team.sft,
                cluster=cluster,
                gpus=8 * rng.randint(1, 2),
                purpose=f"bench {i}",
                start=begin,
                end=begin + dt.timedelta(hours=rng.randint(1, 12)),
                state="approved",
            )
        )
    Reservation.objects.bulk_create(rows)
    two_weeks = timed(lambda: services.availability(cluster, start, start + dt.timedelta(days=14)), 10)
    one_day = timed(lambda: services.availability(cluster, start, start + dt.timedelta(days=1)), 30)
    return [
        "## availability() with 500 approved bookings (64 nodes × 8 GPUs)",
        "",
        "| window | slots | median |",
        "| --- | ---: | ---: |",
        f"| 2 weeks | 336 | {two_weeks:.0f} ms |",
        f"| 1 day (the form's preview) | 24 | {one_day:.1f} ms |",
        "",
    ]


def bench_sync(team) -> list[str]:  # type: ignore[no-untyped-def]
    cluster = register_cluster()
    give_accounts(cluster, team.management, [team.member("admin")], account="management")
    worker = Worker(name="lending-bench", pool=ssh.Pool(max_backoff=2.0))
    worker.cycle()  # inventory, and the admin's association (tk-u0 → management)
    counted = {"commands": 0}

    def counting_sync(poll: Poll) -> None:
        before = poll.conn.commands_run
        sync.sync_reservations(poll)
        counted["commands"] = poll.conn.commands_run - before

    path = "lending.sync.sync_reservations"
    worker.cluster_steps = [(p, counting_sync if p == path else step) for p, step in worker.cluster_steps]
    lines = [
        "## Remote commands per worker cycle on the dev cluster",
        "",
        "| cycle | commands | of which lending | time |",
        "| --- | ---: | ---: | ---: |",
    ]

    def cycle(label: str) -> None:
        counted["commands"] = 0
        began = time.perf_counter()
        worker.cycle()
        ms = (time.perf_counter() - began) * 1000
        stats = worker.last_stats[cluster.pk]
        lines.append(f"| {label} | {stats.commands} | {counted['commands']} | {ms:.0f} ms |")

    cycle("idle")
    cycle("idle")
    tomorrow = timezone.now().replace(minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
    made = []
    try:
        for i in range(5):
            begin = tomorrow + dt.timedelta(hours=2 * i)
            r = services.request_reservation(
                team.member("admin"), subteam=team.management, cluster=cluster, gpus=8, purpose=f"bench {i}",
                start=begin, end=begin + dt.timedelta(hours=1),
            )  # fmt: skip
            made.append(services.approve(team.member("admin"), r))
        cycle("5 to create")
        ok = Reservation.objects.filter(pk__in=[r.pk for r in made], on_cluster=True).count()
        lines.append(f"| (created on the cluster: {ok} of 5) | | | |")
        cycle("idle")
        for r in made:
            services.cancel(team.member("admin"), r)
        cycle("5 to delete")
        cycle("idle")
    finally:
        remote = worker.pool.connect((cluster.pk, cluster.username), connection_for(cluster))
        for r in made:
            remote.run(["scontrol", "delete", f"reservationname=tanuki-{r.pk}"])
        worker.pool.close_all()
    lines += [
        "",
        "An idle cycle is the scheduler's own (squeue; sacct when jobs end): lending adds none.",
        "",
    ]
    return lines


def main() -> None:
    DB.unlink(missing_ok=True)
    call_command("migrate", verbosity=0)
    team = make_team()
    lines = [
        "# Lending list benchmarks",
        "",
        f"Run {timezone.now():%Y-%m-%d %H:%M} UTC on the dev machine.",
        "",
    ]
    lines += bench_availability(team)
    if os.geteuid() == 0 and (STATE_DIR / "cluster.json").exists():
        lines += bench_sync(team)
    else:
        lines += ["(sync cycle skipped: the dev cluster is not up)", ""]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "lending.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
