"""Timings and query counts of the evals app: ``.venv/bin/python bench/evals_bench.py`` (prints the
table and writes bench/results/evals.md).

Runs on a throwaway SQLite database (or DATABASE_URL's):
imports a full-size MT-Bench judgment file (80 questions, 160 turns per model, 1 to 10 models), then
renders the project leaderboard and a result page with 10, 100 and 500 results.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402

CATEGORIES = ("coding", "extraction", "humanities", "math", "reasoning", "roleplay", "stem", "writing")


def questions() -> list[dict[str, Any]]:
    return [
        {"question_id": 81 + i, "category": CATEGORIES[i // 10], "turns": [f"質問 {i} の1", f"質問 {i} の2"]}
        for i in range(80)
    ]


def judgments(models: int, rng: random.Random) -> list[dict[str, Any]]:
    return [
        {
            "question_id": q["question_id"],
            "model": f"model-{m}",
            "judge": ["gpt-4", "single-v1"],
            "judgment": "評価: " + "とても良い回答です。" * 40 + f"Rating: [[{score}]]",
            "score": score,
            "turn": turn,
        }
        for m in range(models)
        for q in questions()
        for turn in (1, 2)
        for score in [rng.randint(1, 10)]
    ]


def timed(fn: Any, repeat: int = 5) -> tuple[float, int]:
    """Median milliseconds and the query count of one call."""
    times = []
    queries = 0
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as captured:
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1000)
        queries = len(captured)
    return statistics.median(times), queries


def main() -> None:
    from django.test.runner import DiscoverRunner

    from evals import services
    from evals.models import EvalResult
    from tests.evals.conftest import jsonl
    from tests.personas import make_team

    setup_test_environment()
    runner = DiscoverRunner(verbosity=0)
    old = runner.setup_databases()
    try:
        team = make_team()
        client = team.client("admin")
        rng = random.Random(7)  # noqa: S311 - reproducible fake scores, not secrets
        qfile = jsonl(questions())
        print("| what | ms (median of 5) | queries |\n|---|---:|---:|")
        for models in (1, 10):
            data = jsonl(judgments(models, rng))

            def run(data: bytes = data) -> None:
                services.import_judgments(None, judgments_jsonl=data, questions_jsonl=qfile, subteam=team.sft)

            ms, n = timed(run)
            print(f"| import {models} model(s) × 160 judgments ({len(data) // 1024} KiB) | {ms:.0f} | {n} |")
        EvalResult.objects.all().delete()
        base = EvalResult.objects.create(model_name="ref", is_baseline=True, average=7.81)
        detail = services.import_judgments(
            None, judgments_jsonl=jsonl(judgments(1, rng)), questions_jsonl=qfile
        )[0]
        for rows in (10, 100, 500):
            have = EvalResult.objects.count()
            EvalResult.objects.bulk_create(
                EvalResult(
                    model_name=f"m{i}",
                    average=rng.uniform(2, 8),
                    **{c: rng.uniform(1, 10) for c in CATEGORIES},
                )
                for i in range(have, rows)
            )
            ms, n = timed(lambda: client.get("/leaderboard/?sort=-writing"))
            print(f"| leaderboard, {rows} results | {ms:.1f} | {n} |")
        ms, n = timed(lambda: client.get(f"{detail.get_absolute_url()}?compare={base.pk}"))
        print(
            f"| result page, 160 judgments, radar vs a baseline, 500 results to compare with | {ms:.1f} | {n} |"
        )
        ms, n = timed(lambda: client.get("/api/v1/eval-results/"))
        print(f"| API list (page of 50) | {ms:.1f} | {n} |")
    finally:
        runner.teardown_databases(old)


if __name__ == "__main__":
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        main()
    table = captured.getvalue()
    print(table, end="")
    header = "# Evals benchmarks\n\n`.venv/bin/python bench/evals_bench.py` (SQLite unless DATABASE_URL is set), 2-core machine.\n\n"
    (ROOT / "bench" / "results" / "evals.md").write_text(header + table)
