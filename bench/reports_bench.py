"""Server time of the weekly report pages at 1× and 10× the data: ``.venv/bin/python bench/reports_bench.py``
(prints the table and writes bench/results/reports.md).

Two throwaway SQLite databases in a temporary folder, built and measured by child processes. 1×: a team
of 10 subteams and 45 members with 26 weeks behind it; each subteam-week has 8 tasks done with notes, 2 goal changes, 30 jobs, 2 GPU
bookings, 3 evaluation results and a published report; now: 2 blocked tasks and 3 goals per subteam.
10×: the same team with 260 weeks behind it, so every table holds 10× the rows while the week a page
shows is as busy as before. A page whose time grows with the history reads more than its week.

Each figure is a median of `REPEAT` requests through Django's test client (middleware, view and
template: the server's time, no network), signed in as an admin; the databases are measured in turns,
`ROUNDS` times each, and the lowest median is kept (the machine is shared: it is the one least disturbed
by other work). Target: 10× within 1.3× of 1×.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

REPEAT = 21
ROUNDS = 5
SUBTEAMS = 10
MEMBERS = 45
WEEKS_1X = 26
TARGET = 1.3


def timed(fn: Callable[[], object]) -> tuple[float, float, int]:
    """The median wall-clock and CPU milliseconds of `REPEAT` calls, and the queries of one call."""
    fn()  # warm: templates, translations, content types
    wall, cpu = [], []
    queries = 0
    for _ in range(REPEAT):
        with CaptureQueriesContext(connection) as captured:
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall.append((time.perf_counter() - start) * 1000)
            cpu.append((time.process_time() - start_cpu) * 1000)
        queries = len(captured)
    return statistics.median(wall), statistics.median(cpu), queries


class Team:
    """The rows every week refers to: subteams, members, a cluster, goals, and one report snapshot."""

    def __init__(self) -> None:
        from django.contrib.auth.models import User

        from portal.models import Goal, Member, Membership, Subteam, Task
        from scheduler.models import Cluster

        self.subteams = [
            Subteam.objects.create(name=f"Subteam {i}", slug=f"team-{i}", slack_channel=f"#team-{i}")
            for i in range(SUBTEAMS)
        ]
        admin = User.objects.create_superuser("admin", "admin@example.org", "x")
        Member.objects.create(user=admin, display_name="Admin")
        self.admin = admin
        self.members = []
        for i in range(MEMBERS):
            user = User.objects.create_user(f"m{i}", f"m{i}@example.org", "x")
            member = Member.objects.create(user=user, display_name=f"Member {i}")
            Membership.objects.create(
                member=member,
                subteam=self.subteams[i % SUBTEAMS],
                role="lead" if i < SUBTEAMS else "member",
                started=dt.date(2024, 1, 1),
            )
            self.members.append(member)
        self.cluster = Cluster.objects.create(
            name="main", host="127.0.0.1", username="tanuki", work_dir="/srv"
        )
        self.goals = []
        for s in self.subteams:
            for g in range(3):
                self.goals.append(
                    Goal.objects.create(
                        subteam=s,
                        title=f"{s.name} goal {g}",
                        status=Goal.Status.AT_RISK if g == 0 else Goal.Status.ON_TRACK,
                        due_date=timezone.localdate() + dt.timedelta(days=30 * g - 3),
                    )
                )
            for b in range(2):
                Task.objects.create(subteam=s, title=f"{s.name} blocked {b}", status=Task.Status.BLOCKED)
        self.snapshot: dict[str, object] | None = None


def add_weeks(team: Team, first: int, last: int) -> None:
    """Weeks `first`..`last`-1 before last week (0: last week, -1: this week), every table's rows, in bulk."""
    from evals.models import EvalResult
    from lending.models import Reservation
    from portal.models import GoalRevision, Task
    from reports import data, weeks
    from reports.models import WeeklyReport
    from scheduler.models import Job

    last_week = weeks.this_week() - dt.timedelta(days=7)
    for n in range(first, last):
        week = last_week - dt.timedelta(days=7 * n)
        start, _end = weeks.bounds(week)
        tasks, revisions, jobs, bookings, results, reports = [], [], [], [], [], []
        for si, s in enumerate(team.subteams):
            owner = team.members[si]
            for t in range(8):
                at = start + dt.timedelta(hours=10 + t * 17)
                tasks.append(
                    Task(
                        subteam=s,
                        title=f"w{n} {s.slug} task {t}",
                        status=Task.Status.DONE,
                        learnings="What worked and what did not, with a link or two. " * 3,
                        created_at=at,
                        updated_at=at,
                    )
                )
            for r in range(2):
                revisions.append(
                    GoalRevision(
                        goal=team.goals[si * 3 + r],
                        changes={"metric_current": [6.0, 6.1]},
                        reason=f"week {n}: new results",
                        created_at=start + dt.timedelta(days=2, hours=r),
                    )
                )
            for j in range(30):
                began = start + dt.timedelta(hours=4 * j + si % 4)
                jobs.append(
                    Job(
                        id=uuid.uuid4(),
                        name=f"w{n}-{s.slug}-{j}",
                        owner=owner,
                        subteam=s,
                        cluster=team.cluster,
                        command="python train.py",
                        script="#!/bin/bash\n",
                        partition="gpu",
                        time_limit_minutes=600,
                        gpus_per_node=8,
                        gpus=8,
                        state=Job.State.COMPLETED if j % 5 else Job.State.FAILED,
                        started_at=began,
                        ended_at=began + dt.timedelta(hours=3),
                        gpu_hours=24,
                        created_at=began,
                    )
                )
            for b in range(2):
                bookings.append(
                    Reservation(
                        requester=owner,
                        subteam=s,
                        cluster=team.cluster,
                        gpus=8,
                        start=start + dt.timedelta(days=2 * b + 1),
                        end=start + dt.timedelta(days=2 * b + 1, hours=12),
                        purpose=f"w{n} sweep {b}",
                        state=Reservation.State.FINISHED,
                    )
                )
            for e in range(3):
                results.append(
                    EvalResult(
                        model_name=f"w{n}-{s.slug}-model-{e}",
                        subteam=s,
                        average=5 + (n % 7) / 3 + e / 10,
                        created_at=start + dt.timedelta(days=4, hours=e),
                    )
                )
            if n > 0:  # last week's reports are made by the services below
                reports.append(
                    WeeklyReport(
                        subteam=s,
                        week=week,
                        state=WeeklyReport.State.PUBLISHED,
                        body="What we did.\n\n- one\n- two",
                        issues="Nothing urgent.",
                        published_at=start + dt.timedelta(days=4),
                    )
                )
        Task.objects.bulk_create(tasks)
        GoalRevision.objects.bulk_create(revisions)
        Job.objects.bulk_create(jobs)
        Reservation.objects.bulk_create(bookings)
        EvalResult.objects.bulk_create(results)
        if team.snapshot is None:
            team.snapshot = data.week_data(team.subteams[0], week)
        for report in reports:
            report.data = team.snapshot
        WeeklyReport.objects.bulk_create(reports)


PAGES = {
    "report, published (last week)": "/reports/teams/team-0/{last_week}/",
    "report, none yet (this week so far, live)": "/reports/teams/team-0/{this_week}/",
    "agenda, this week (live)": "/reports/agenda/",
    "agenda, last week (published snapshots)": "/reports/agenda/{last_week}/",
    "archive (all subteams)": "/reports/",
}
DRAFT = "draft: generate a subteam's week (the service)"


def build(scale: int) -> dict[str, int]:
    """Migrate this process's database and fill it with `scale`× the data."""
    from django.core.management import call_command

    from portal.models import Task
    from reports import services, weeks
    from scheduler.models import Job

    call_command("migrate", verbosity=0)
    team = Team()
    add_weeks(team, -1, WEEKS_1X * scale)  # -1: this week, so far
    last_week = weeks.this_week() - dt.timedelta(days=7)
    for s in team.subteams:  # last week's reports through the services, published
        services.publish(None, services.draft(s, last_week))
    return {"weeks": WEEKS_1X * scale, "jobs": Job.objects.count(), "tasks": Task.objects.count()}


def measure() -> dict[str, tuple[float, float, int]]:
    """The median time and the queries of each page (and of the draft service) on this database."""
    from django.contrib.auth.models import User
    from django.test import Client

    from portal.models import Subteam
    from reports import services, weeks
    from reports.models import WeeklyReport

    client = Client(headers={"accept-language": "en"})
    client.force_login(User.objects.get(username="admin"))
    this_week = weeks.this_week()
    dates = {"this_week": this_week, "last_week": this_week - dt.timedelta(days=7)}
    found = {name: timed(partial(client.get, path.format(**dates))) for name, path in PAGES.items()}
    shown = Subteam.objects.get(slug="team-0")
    found[DRAFT] = timed(lambda: services.draft(shown, this_week))
    WeeklyReport.objects.filter(week=this_week).delete()  # the live preview stays a preview
    return found


def child(command: str, database: Path, *args: str) -> Any:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}"}
    done = subprocess.run(
        [sys.executable, __file__, command, str(database), *args],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> str:
    """Build both databases, then measure them in turns (1×, 10×, 1×, …), so that whatever else the
    machine does at a time weighs on both alike; keep each one's lowest median."""
    lines = []
    with tempfile.TemporaryDirectory(prefix="reports-bench-") as folder:
        databases = {scale: Path(folder) / f"{scale}x.sqlite3" for scale in (1, 10)}
        sizes = {scale: child("--build", path, str(scale)) for scale, path in databases.items()}
        wall: dict[int, dict[str, list[float]]] = {1: {}, 10: {}}
        cpu: dict[int, dict[str, list[float]]] = {1: {}, 10: {}}
        queries: dict[int, dict[str, int]] = {1: {}, 10: {}}
        for _ in range(ROUNDS):
            for scale, path in databases.items():
                for name, (ms, cpu_ms, n) in child("--measure", path).items():
                    wall[scale].setdefault(name, []).append(ms)
                    cpu[scale].setdefault(name, []).append(cpu_ms)
                    queries[scale][name] = n
    described = "; ".join(
        f"{scale}×: {size['weeks']} weeks behind, {size['jobs']} jobs, {size['tasks']} tasks"
        for scale, size in sizes.items()
    )
    lines.append(f"Data: {SUBTEAMS} subteams, {MEMBERS} members; {described}.\n")
    lines.append(
        "| what | 1× ms | 10× ms | 10×/1× | CPU ms 1× / 10× | CPU 10×/1× | queries 1× / 10× |\n"
        "|---|---:|---:|---:|---:|---:|---:|"
    )
    for name in [*PAGES, DRAFT]:
        one, ten = min(wall[1][name]), min(wall[10][name])
        cpu_one, cpu_ten = min(cpu[1][name]), min(cpu[10][name])
        lines.append(
            f"| {name} | {one:.1f} | {ten:.1f} | {ten / one:.2f}{'' if ten / one <= TARGET else ' ⚠'} "
            f"| {cpu_one:.1f} / {cpu_ten:.1f} | {cpu_ten / cpu_one:.2f} "
            f"| {queries[1][name]} / {queries[10][name]} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--build":
        print(json.dumps(build(int(sys.argv[3]))))
    elif len(sys.argv) > 1 and sys.argv[1] == "--measure":
        print(json.dumps(measure()))
    else:
        table = main()
        print(table, end="")
        header = (
            "# Weekly reports benchmarks\n\n"
            "`.venv/bin/python bench/reports_bench.py`: two SQLite databases (1× and 10×) measured in turns, "
            f"on a 2-core machine shared with other work; each figure is the lowest of {ROUNDS} medians of "
            f"{REPEAT} requests; target 10×/1× ≤ {TARGET}.\n\n"
        )
        (ROOT / "bench" / "results" / "reports.md").write_text(header + table)
