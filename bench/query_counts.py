"""Queries per page on the demo organisation (45 members, 12 subteams, 81 tasks, 20 goals).

    DEBUG=1 DATABASE_URL=sqlite:////tmp/bench.sqlite3 .venv/bin/python manage.py migrate
    DEBUG=1 DATABASE_URL=sqlite:////tmp/bench.sqlite3 .venv/bin/python manage.py load_demo
    DATABASE_URL=sqlite:////tmp/bench.sqlite3 .venv/bin/python bench/query_counts.py

Writes bench/results/query_counts.md. The tests pin that these counts do not grow with the data
(tests/portal/test_pages.py, tests/portal/test_api.py); this file records the absolute numbers.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from portal.models import Goal  # noqa: E402
from scheduler.models import Job  # noqa: E402

PAGES = [
    "/",
    "/subteams/",
    "/subteams/post-training/",
    "/tasks/",
    "/tasks/?subteam=post-training",
    "/goals/",
    "/goals/{goal}/",
    "/timeline/",
    "/members/",
    "/members/admin/",
    "/jobs/",
    "/jobs/{job}/",
    "/jobs/new/",
    "/clusters/",
    "/api/v1/members/",
    "/api/v1/subteams/",
    "/api/v1/tasks/",
    "/api/v1/goals/",
    "/api/v1/milestones/",
    "/api/v1/jobs/",
    "/api/v1/clusters/",
]


def main() -> None:
    client = Client(headers={"accept-language": "en"}, HTTP_HOST="127.0.0.1")
    client.force_login(User.objects.get(username="admin"))
    goal = Goal.objects.filter(subteam__isnull=True).first()
    job = Job.objects.first()
    rows = ["| page | status | queries | ms (median of 5) |", "| --- | --- | --- | --- |"]
    for template in PAGES:
        if "{job}" in template and job is None:
            continue
        url = template.format(goal=goal.pk if goal else 1, job=job.pk if job else "")
        client.get(url)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        count = len(queries)  # read now: Django clears the query log when the next request starts
        times = []
        for _ in range(5):
            start = time.perf_counter()
            client.get(url)
            times.append((time.perf_counter() - start) * 1000)
        times.sort()
        rows.append(f"| `{template}` | {response.status_code} | {count} | {times[2]:.1f} |")
    out = ROOT / "bench" / "results" / "query_counts.md"
    out.write_text("\n".join(rows) + "\n", encoding="utf-8")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
