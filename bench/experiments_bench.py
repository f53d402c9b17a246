"""Latency and query counts of the experiments pages at 50 and 500 evaluation results:

    .venv/bin/python bench/experiments_bench.py                      # SQLite, then PostgreSQL
    .venv/bin/python bench/experiments_bench.py --postgres none      # SQLite only
    .venv/bin/python bench/experiments_bench.py --postgres postgres://user@host:port

Prints the tables and writes bench/results/experiments.md. Each database runs in its own process (Django
is set up once per process): SQLite in a throwaway file, PostgreSQL in a scratch test database
(`test_experiments_bench`, made and dropped by Django's test runner; default server
postgres://postgres@127.0.0.1:5432).

The data, built through the code the portal uses (no cluster: a fake one nobody reaches, as the tests'):
sweeps submitted with `sweeps.plan` + `sweeps.submit`, each run a pipeline train → MT-Bench evaluation,
every job then set COMPLETED as the worker would, one EvalResult per run (`job` = the eval job,
`trained_by_job` = the training job), and `lineage.record_models` run as the worker's step until it has
recorded every data set use and model. Every training job reads the same 3 registered data sets (READY);
sweep k trains from the model of sweep k-1's run 1 (a chain of models, so lineage pages have ancestors
and children). 500 results: 8 sweeps of 64, 64, 64, 64, 64, 64, 64 and 52 runs; 50 results: 8 sweeps of
7, 7, 6, 6, 6, 6, 6 and 6 runs (the same shape at 1/10).

On PostgreSQL the tables are ANALYZEd once built (autovacuum would have done it before anyone reads the
pages). Each page: 2 requests to warm up, then `--requests` (20) timed requests with the test client as a
signed-in member of the subteam; median and p95 (nearest rank) of the wall time in ms, the median CPU
time of this process (less inflated by other load on the machine; on SQLite it includes the database's
work, on PostgreSQL not the server's), and the query count of one request (session and user included).
The statements that run more than once in one request (the same text but for literals) are listed with
their counts at both scales: where a page's queries grow with what it shows.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "experiments.md"
POSTGRES = "postgres://postgres@127.0.0.1:5432"
SCALES = {
    50: [7, 7, 6, 6, 6, 6, 6, 6],
    500: [64, 64, 64, 64, 64, 64, 64, 52],
}
DATASETS = [("ichikara", "v1"), ("oasst-ja", "v2"), ("jmt-instruct", "v3")]
LOGGED = ("train/loss", "train/learning_rate", "train/grad_norm")  # per step of each training job
STEPS = 200


# --- the child: one database --------------------------------------------------------------------------------


def setup_django(database_url: str) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    os.environ["DATABASE_URL"] = database_url
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    logging.disable(logging.INFO)  # axes' and the scheduler's INFO lines, not the bench's output


@dataclass
class World:
    results: int
    sweep_sizes: list[int]
    pages: list[tuple[str, str, str]]  # (what, url, what it shows)
    build_s: float
    record_s: float
    record_queries: int
    record_calls: int


def axes_for(runs: int) -> list[tuple[str, list[Any]]]:
    """Two varied fields whose grid has `runs` runs: learning rate × LoRA rank."""
    rates = max(d for d in range(1, 9) if runs % d == 0)
    return [
        ("learning_rate", [round(1e-5 * (i + 1), 7) for i in range(rates)]),
        ("lora_r", [4 * (i + 1) for i in range(runs // rates)]),
    ]


def build(sizes: list[int], seed: int) -> World:
    """The team, a fake cluster, 3 data sets, the sweeps, their results and lineage records."""
    import random

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from evals.models import CATEGORIES, EvalResult
    from experiments import lineage, sweeps
    from experiments.models import JobDataset, ModelRecord
    from metrics import store
    from scheduler.models import Job
    from scheduler.steps import CycleStats, Poll
    from tests.experiments.helpers import MODEL, dataset, eval_spec, fake_cluster, finish, sft, spec
    from tests.personas import make_team

    rng = random.Random(seed)  # noqa: S311 - reproducible fake scores, not secrets
    start = time.perf_counter()
    team = make_team()
    cluster = fake_cluster(team)
    sets = [dataset(team, cluster, name, version) for name, version in DATASETS]
    refs = [d.ref for d in sets]
    member = team.member("member")
    made = []
    base_model = MODEL
    for k, runs in enumerate(sizes):
        request = sft(train_files=[], datasets=refs, model=base_model, lora=True)
        found = sweeps.plan(
            name=f"sweep{k}",
            base=spec(team, cluster, request),
            axes_raw=axes_for(runs),
            eval_spec=eval_spec(team, cluster),
        )
        sweep = sweeps.submit(member, found)
        assert sweep.runs.count() == runs
        for run in sweep.runs.select_related("job", "eval_job").order_by("number"):
            finish(run.job)
            points = store.Points()
            for step in range(1, STEPS + 1):
                loss = 2.5 / math.sqrt(step) + rng.uniform(0, 0.05)
                points.add_row(step, dict(zip(LOGGED, (loss, 2e-5, rng.uniform(0.5, 2)), strict=True)), None)
            store.add_points(run.job.pk, points)
            assert run.eval_job is not None
            finish(run.eval_job)
            # Each sweep a little better than the one it trained from: the best result is in the last.
            scores = {c: round(min(10.0, rng.uniform(3, 7) + 0.4 * k), 2) for c in CATEGORIES}
            EvalResult.objects.create(
                model_name=run.job.name,
                job=run.eval_job,
                trained_by_job=run.job,
                subteam=run.job.subteam,
                average=round(sum(scores.values()) / len(scores), 3),
                source=EvalResult.Source.JOB,
                **scores,
            )
            if run.number == 1:
                base_model = run.job.output_dir  # the next sweep trains from this run's model
        made.append(sweep)
    build_s = time.perf_counter() - start

    poll = Poll(cluster, None, "bench", CycleStats(cluster.name))  # type: ignore[arg-type]
    start = time.perf_counter()
    calls = 0
    with CaptureQueriesContext(connection) as captured:
        while True:
            before = (JobDataset.objects.count(), ModelRecord.objects.count())
            lineage.record_models(poll)
            calls += 1
            if (JobDataset.objects.count(), ModelRecord.objects.count()) == before:
                break
    record_s = time.perf_counter() - start
    training = Job.objects.filter(kind__in=Job.Kind.kinds_that_train())
    assert ModelRecord.objects.count() == training.count() == sum(sizes)
    assert JobDataset.objects.count() == len(sets) * sum(sizes)
    assert EvalResult.objects.count() == sum(sizes)
    assert ModelRecord.objects.filter(base__isnull=False).count() == sum(sizes) - sizes[0]

    largest = max(made, key=lambda s: s.runs.count())
    best = EvalResult.objects.order_by("-average", "-pk").first()
    assert best is not None
    top4 = list(EvalResult.objects.order_by("-average", "-pk").values_list("pk", flat=True)[:4])
    first = EvalResult.objects.filter(trained_by_job__sweep_run__sweep=made[0]).order_by("-average").first()
    assert first is not None
    best_sweep = made.index(best.trained_by_job.sweep_run.sweep)  # type: ignore[union-attr]
    # The job whose model the last sweep trained from: 5+ ancestors, a whole sweep of children.
    seed_job = made[-2].runs.get(number=1).job
    pages = [
        ("sweep table", f"/sweeps/{largest.pk}/", f"{largest.runs.count()} runs"),
        (
            "lineage of the best result",
            f"/lineage/results/{best.pk}/",
            f"a run of sweep{best_sweep}: {best_sweep} ancestors",
        ),
        (
            "lineage of a result of the first sweep",
            f"/lineage/results/{first.pk}/",
            "a run of sweep0: no ancestors",
        ),
        (
            "lineage of a job",
            f"/lineage/jobs/{seed_job.pk}/",
            f"{sizes[-1]} children ({min(sizes[-1], lineage.MAX_PER_COLUMN)} drawn), "
            f"{len(sizes) - 2} ancestors",
        ),
        (
            "data set (used by every run)",
            f"/datasets/{sets[0].pk}/",
            f"{sum(sizes)} jobs ({min(sum(sizes), lineage.MAX_PER_COLUMN)} drawn)",
        ),
        ("compare 4 results", "/compare/?results=" + ",".join(str(pk) for pk in top4), "4 results"),
        ("leaderboard", "/leaderboard/", f"{sum(sizes)} results"),
    ]
    return World(
        results=sum(sizes),
        sweep_sizes=sizes,
        pages=pages,
        build_s=build_s,
        record_s=record_s,
        record_queries=len(captured),
        record_calls=calls,
    )


_LITERALS = re.compile(r"'(?:[^']|'')*'|\b\d+(?:\.\d+)?\b|%s|\?")


def repeated(sqls: list[str]) -> list[tuple[str, int]]:
    """Statements that run more than once in a request, by their text without literals."""
    shapes = Counter(_LITERALS.sub("?", sql) for sql in sqls)
    return [(shape, n) for shape, n in shapes.most_common() if n > 1]


def short_sql(sql: str) -> str:
    """`SELECT … FROM "table" WHERE …` shortened to what names the query."""
    table = re.search(r'FROM\s+"?(\w+)"?', sql)
    where = re.search(r"WHERE (.{0,80})", sql)
    name = table.group(1) if table else sql[:40]
    return f"{name}" + (f" WHERE {where.group(1)}…" if where else "")


def measure(url: str, requests: int, client: Any) -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(2):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    sqls = [q["sql"] for q in captured.captured_queries]
    times, cpu = [], []
    for _ in range(requests):
        start, start_cpu = time.perf_counter(), time.process_time()
        response = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
        assert response.status_code == 200
    times.sort()
    return {
        "queries": len(sqls),
        "median": statistics.median(times),
        "p95": times[max(0, math.ceil(0.95 * len(times)) - 1)],
        "cpu": statistics.median(cpu),
        "bytes": len(response.content),
        "repeated": repeated(sqls),
        "sql": sqls,
    }


def child(database_url: str, requests: int, dump: str) -> None:
    """Build each scale in a fresh test database, measure its pages, print a markdown section."""
    setup_django(database_url)
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.runner import DiscoverRunner
    from django.test.utils import setup_test_environment

    from portal.models import Member

    setup_test_environment()
    runner = DiscoverRunner(verbosity=0, interactive=False)
    old = runner.setup_databases()
    vendor = connection.vendor
    measured: dict[int, tuple[World, list[dict[str, Any]]]] = {}
    try:
        for scale, sizes in SCALES.items():
            call_command("flush", interactive=False, verbosity=0)
            world = build(sizes, seed=scale)
            if vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("ANALYZE")  # as autovacuum would have by the time anyone reads the pages
            client = Client(headers={"accept-language": "en"})
            client.force_login(Member.objects.get(user__username="member").user)
            measured[scale] = (world, [measure(url, requests, client) for _what, url, _shows in world.pages])
            print(f"{vendor}: {scale} results built and measured", file=sys.stderr)
    finally:
        runner.teardown_databases(old)
    if dump:
        with open(dump, "a", encoding="utf-8") as out:
            for scale, (world, numbers) in measured.items():
                for (what, url, _shows), n in zip(world.pages, numbers, strict=True):
                    out.write(f"\n## {vendor} {scale} {what} {url}: {n['queries']} queries\n")
                    out.writelines(f"{sql}\n" for sql in n["sql"])
    print(section(vendor, measured, requests))


def section(vendor: str, measured: dict[int, tuple[World, list[dict[str, Any]]]], requests: int) -> str:
    small, large = min(measured), max(measured)
    (w_small, n_small), (w_large, n_large) = measured[small], measured[large]
    title = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}.get(vendor, vendor)
    lines = [
        f"## {title}",
        "",
        f"ms over {requests} requests (median, p95); ratio = median at {large} ÷ median at {small}; CPU ms: "
        "the median CPU time of this process per request (the page's Python and, on SQLite, the database's "
        "work; not PostgreSQL's server), which other load on the machine inflates less than the wall time.",
        "",
        f"| page | shows ({small} / {large}) | queries {small} | queries {large} | median ms {small} "
        f"| p95 ms {small} | median ms {large} | p95 ms {large} | ratio | CPU ms {small} / {large} "
        f"| HTML KiB {large} |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (what, url, shows_small), (_w, _u, shows_large), a, b in zip(
        w_small.pages, w_large.pages, n_small, n_large, strict=True
    ):
        path = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}|\d+", "<id>", url.split("?")[0])
        lines.append(
            f"| {what} `{path}` | {shows_small} / {shows_large} | {a['queries']} | {b['queries']} "
            f"| {a['median']:.1f} | {a['p95']:.1f} | {b['median']:.1f} | {b['p95']:.1f} "
            f"| {b['median'] / a['median']:.1f}× | {a['cpu']:.0f} / {b['cpu']:.0f} | {b['bytes'] // 1024} |"
        )
    lines += ["", "Building the data (not a page):", ""]
    for scale, (world, _n) in measured.items():
        lines.append(
            f"- {scale} results: sweeps submitted, finished and scored in {world.build_s:.1f} s; "
            f"`lineage.record_models` until all was recorded: {world.record_calls} calls, "
            f"{world.record_s:.2f} s, {world.record_queries} queries"
        )
    grown = [
        (what, a["queries"], b["queries"])
        for (what, _u, _s), a, b in zip(w_small.pages, n_small, n_large, strict=True)
        if a["queries"] != b["queries"]
    ]
    lines += ["", "Query counts from 50 to 500 results: "]
    lines[-1] += (
        "; ".join(f"{what} {a} → {b}" for what, a, b in grown) if grown else "the same on every page."
    )
    lines += [
        "",
        f"Statements run more than once in one request (times at {small} → at {large} results):",
        "",
    ]
    found: list[tuple[str, str, int, int]] = []  # (page, statement, times at small, at large)
    for (what, _u, _s), a, b in zip(w_small.pages, n_small, n_large, strict=True):
        before, after = dict(a["repeated"]), dict(b["repeated"])
        found += [(what, shape, before.get(shape, 1), after.get(shape, 1)) for shape in {**after, **before}]
    everywhere = {
        (shape, x, y)
        for _what, shape, x, y in found
        if sum(1 for f in found if f[1:] == (shape, x, y)) == len(w_large.pages)
    }
    lines += [f"- every page: {x} → {y} `{short_sql(shape)}`" for shape, x, y in sorted(everywhere)]
    lines += [
        f"- {what}: {x} → {y} `{short_sql(shape)}`"
        for what, shape, x, y in found
        if (shape, x, y) not in everywhere
    ]
    if not found:
        lines.append("- none")
    return "\n".join(lines) + "\n"


# --- the parent: each database in its own process -----------------------------------------------------------


def run_child(database_url: str, requests: int, dump: str) -> str:
    command = [sys.executable, __file__, "--child", database_url, "--requests", str(requests)]
    if dump:
        command += ["--dump-sql", dump]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        return f"Not run: the process exited with {done.returncode} (its error is above).\n"
    return done.stdout


def postgres_reachable(server: str) -> str:
    try:
        import psycopg

        with psycopg.connect(server + "/postgres", connect_timeout=3):
            return ""
    except Exception as error:
        return str(error).strip().splitlines()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        "--postgres",
        default=POSTGRES,
        help=f"postgres://user@host:port (default {POSTGRES}); 'none' for SQLite only",
    )
    parser.add_argument("--requests", type=int, default=20, help="timed requests per page (default 20)")
    parser.add_argument("--dump-sql", default="", help="append every page's SQL to this file")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.requests, args.dump_sql)
        return
    load = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    sections = []
    with tempfile.TemporaryDirectory(prefix="experiments-bench-") as work:
        sections.append(run_child(f"sqlite:///{work}/bench.sqlite3", args.requests, args.dump_sql))
    if args.postgres != "none":
        server = args.postgres.rstrip("/")
        server = re.sub(r"(//[^/]+)/.*$", r"\1", server)  # the server, whatever database the URL named
        problem = postgres_reachable(server)
        if problem:
            sections.append(f"## PostgreSQL\n\nNot run: {server} is not reachable ({problem}).\n")
        else:
            sections.append(run_child(f"{server}/experiments_bench", args.requests, args.dump_sql))
    end_load = os.getloadavg()
    header = (
        "# Experiments pages benchmarks\n\n"
        "`.venv/bin/python bench/experiments_bench.py` (SQLite, then PostgreSQL at "
        f"{POSTGRES}; `--postgres none`: SQLite only), run {started} on the dev machine "
        f"({os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the start, "
        f"{end_load[0]:.2f} {end_load[1]:.2f} {end_load[2]:.2f} at the end).\n\n"
        "Data: 500 evaluation results = 8 sweeps (64 × 7 + 52 runs), each run a pipeline train → MT-Bench "
        "evaluation, all COMPLETED, one result per run; 3 READY data sets read by every training job; "
        "sweep k trains from sweep k-1's run 1 model; model and data set records made by "
        "`lineage.record_models`. 50 results: the same shape at 1/10 (8 sweeps of 6 or 7 runs). "
        "Pages fetched with Django's test client as a signed-in member; queries include the session "
        "and user.\n\n"
    )
    text = header + "\n".join(sections)
    print(text, end="")
    RESULTS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
