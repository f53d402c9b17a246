"""Slack app benchmarks (SQLite file, local fake Slack server; no network).

    .venv/bin/python bench/slack_bench.py            # writes bench/results/slack.md

1. Time and SQL queries to answer each slash command through the signed endpoint (median of 30):
   Slack wants an answer within 3 seconds; `gpus` and `reserve` answer at once and post later.
2. The deferred part of `gpus` (lending list availability for the rest of today), 2 clusters,
   60 bookings.
3. The job receiver (one outbox INSERT per terminal state change).
4. Delivery: 200 notifications posted to a local chat.postMessage, ms per notification.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DB = Path(tempfile.gettempdir()) / "tanuki-slack-bench.sqlite3"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
os.environ["DATABASE_URL"] = f"sqlite:///{DB}"

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from lending.models import Reservation  # noqa: E402
from portal.models import Member  # noqa: E402
from scheduler.models import Job, JobEvent  # noqa: E402
from slackbot import commands, delivery, notify, outbox  # noqa: E402
from slackbot.models import Notification, SeenRequest  # noqa: E402
from tests.personas import make_team  # noqa: E402
from tests.slackbot.conftest import SECRET, TOKEN, form, post, signed_headers  # noqa: E402
from tests.slackbot.fakeslack import FakeSlack  # noqa: E402
from tests.slackbot.helpers import add_log, make_cluster, make_job  # noqa: E402

RESULTS = ROOT / "bench" / "results"
RUNS = 30


def timed(fn: Callable[[], object], runs: int = RUNS) -> tuple[float, int]:
    """(median ms, queries of one run)."""
    times = []
    queries = 0
    for i in range(runs):
        with CaptureQueriesContext(connection) as ctx:
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1000)
        if i == 0:
            queries = len(ctx.captured_queries)
    return statistics.median(times), queries


def main() -> None:
    DB.unlink(missing_ok=True)
    call_command("migrate", verbosity=0)
    fake = FakeSlack().start()
    settings.SLACK_SIGNING_SECRET = SECRET
    settings.SLACK_BOT_TOKEN = TOKEN
    settings.SLACK_API_BASE_URL = fake.api_url
    team = make_team()
    Member.objects.filter(pk=team.member("member").pk).update(slack_user_id="U0MEMBER")
    cluster = make_cluster("devcluster")
    second = make_cluster("second")
    member = team.member("member")
    for i in range(20):
        make_job(member, team.sft, cluster, name=f"sft-{i}")
    job = make_job(member, team.sft, cluster, name="logged")
    for i in range(10):
        data = "".join(f"step {i * 100 + n} loss 1.234\n" for n in range(100)).encode()
        job.log_chunks.create(stream="stdout", offset=i * len(data), data=data, size=len(data))
    add_log(make_job(member, team.sft, cluster, name="short"), "hello\n")
    now = timezone.now()
    for i in range(60):
        Reservation.objects.create(
            requester=member,
            subteam=team.sft,
            cluster=(cluster, second)[i % 2],
            gpus=8,
            start=now + dt.timedelta(minutes=20 * i),
            end=now + dt.timedelta(minutes=20 * i + 90),
            purpose="bench",
            state=Reservation.State.APPROVED,
        )

    lines = ["# Slack app benchmarks (SQLite, 2 cores, local fake Slack server)", ""]
    lines += ["## Answering a slash command (signed request → JSON answer)", ""]
    lines += ["| command | median | SQL queries |", "| --- | --- | --- |"]
    for text in ("help", "jobs", f"job {str(job.id)[:8]}", "task Bench task", "gpus", "unknown"):

        def send(text: str = text) -> None:
            # A new trigger_id each time: the same body within a second is (rightly) a replay.
            body = form(text, response_url=fake.response_url(), trigger_id=str(time.perf_counter_ns()))
            response = post(body, signed_headers(body))
            assert response.status_code == 200, response.content

        median, queries = timed(send)
        lines.append(f"| `{text.split()[0]}` | {median:.1f} ms | {queries} |")
        fake.response_arrived.wait(5)
    SeenRequest.objects.all().delete()

    median, queries = timed(commands.gpus_text, runs=10)
    lines += [
        "",
        "## Deferred part of `gpus` (2 clusters, 60 bookings, lending availability to midnight)",
        "",
    ]
    lines.append(f"- {median:.1f} ms, {queries} SQL queries")

    ended = make_job(member, team.sft, cluster, name="ended", state=Job.State.FAILED, exit_code=1)

    JobEvent.objects.create(job=ended, kind=JobEvent.Kind.STATE, from_state="running", to_state="failed")

    def receive() -> None:
        Notification.objects.filter(event_key__startswith="job:").delete()
        outbox.collect()

    median, queries = timed(receive, runs=50)
    lines += ["", "## Outbox: a terminal job event → a notification row (`outbox.collect`)", ""]
    lines.append(
        f"- {median:.2f} ms per state change (including the DELETE that resets the bench), {queries} queries"
    )

    Notification.objects.all().delete()
    with transaction.atomic():
        for i in range(200):
            notify.enqueue("#sft", f"bench:{i}", f"message {i}")
    start = time.perf_counter()
    sent = 0
    while True:
        batch = delivery.deliver_pending(limit=20)
        if not batch:
            break
        sent += batch
    elapsed = (time.perf_counter() - start) * 1000
    lines += ["", "## Delivery to a local chat.postMessage", ""]
    lines.append(f"- {sent} notifications in {elapsed:.0f} ms: {elapsed / sent:.2f} ms per notification")
    with CaptureQueriesContext(connection) as ctx:
        delivery.deliver_pending()
    lines.append(f"- an idle worker cycle's delivery: {len(ctx.captured_queries)} SQL query")
    fake.stop()

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "slack.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
