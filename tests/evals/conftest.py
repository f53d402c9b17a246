"""Small FastChat files with hand-computed averages, and eval jobs on a cluster nobody reaches."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from portal.models import Subteam
from scheduler.models import Cluster, Job
from tests.personas import Team

QUESTIONS = [
    {"question_id": 1, "category": "writing", "turns": ["短い詩を書いて", "もっと短く"]},
    {"question_id": 2, "category": "writing", "turns": ["手紙を書いて"]},
    {"question_id": 3, "category": "math", "turns": ["2+2は?", "3+3は?"]},
    {"question_id": 4, "category": "coding", "turns": ["hello world in Python"]},
    {"question_id": 5, "category": "roleplay", "turns": ["たぬきになって", "続けて"]},
    {"question_id": 6, "category": "extraction", "turns": ["名前を抜き出して: 山田"]},
]
# (question_id, turn) -> score; -1 is a judgment without a rating, left out of every average.
SCORES_A = {
    (1, 1): 8,
    (1, 2): 6,
    (2, 1): 9,
    (3, 1): 3,
    (3, 2): 5,
    (4, 1): 2,
    (5, 1): 7,
    (5, 2): -1,
    (6, 1): 10,
}
# By hand: scored 8 6 9 3 5 2 7 10 -> 50 / 8.
EXPECTED_A = {
    "average": 6.25,
    "turn1_average": 6.5,  # 8 9 3 2 7 10 -> 39 / 6
    "turn2_average": 5.5,  # 6 5 -> 11 / 2
    "writing": 7.6667,  # 8 6 9 -> 23 / 3
    "math": 4.0,
    "coding": 2.0,
    "roleplay": 7.0,  # the -1 of turn 2 is left out
    "extraction": 10.0,
    "humanities": None,
    "reasoning": None,
    "stem": None,
}
SCORES_B = {(1, 1): 4, (2, 1): 5, (3, 1): 9, (3, 2): 7}  # average 25 / 4 = 6.25; math 8.0; writing 4.5


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def judgment_rows(
    model: str, scores: dict[tuple[int, int], int], judge: str = "gpt-4"
) -> list[dict[str, Any]]:
    return [
        {
            "question_id": qid,
            "model": model,
            "judge": [judge, "single-v1" if turn == 1 else "single-v1-multi-turn"],
            "user_prompt": "…",
            "judgment": f"評価: Rating: [[{score}]]" if score != -1 else "評価できません。",
            "score": score,
            "turn": turn,
            "tstamp": 1720000000.0,
        }
        for (qid, turn), score in scores.items()
    ]


QUESTIONS_JSONL = jsonl(QUESTIONS)
JUDGMENTS_A = jsonl(judgment_rows("model-a", SCORES_A))
JUDGMENTS_AB = jsonl(judgment_rows("model-a", SCORES_A) + judgment_rows("model-b", SCORES_B))


def summary_for(model: str = "8x8b-dpo", average: float = 7.91, **categories: float | None) -> dict[str, Any]:
    """A summary.json as training/evaluate.py writes it (the DOMAIN.md 8x8B DPO scores by default)."""
    scores = {
        "coding": 6.75,
        "extraction": 6.90,
        "humanities": 9.30,
        "math": 5.75,
        "reasoning": 7.35,
        "roleplay": 8.95,
        "stem": 9.40,
        "writing": 8.85,
    }
    scores.update(categories)
    return {
        "model_id": model,
        "model_path": f"/models/{model}",
        "judge": {"model": "gpt-4", "base_url": "https://judge.example/v1", "prompts": ["single-v1"]},
        "question_set": {"name": "japanese_mt_bench", "path": "/data/question.jsonl", "sha256": "ab" * 32},
        "generation": {"temperature": None, "top_p": 0.9, "max_new_tokens": 1024, "seed": 42},
        "average": average,
        "turn_averages": {"1": 8.1, "2": 7.7},
        "category_averages": scores,
        "other_category_averages": {},
        "counts": {"questions": 80, "turns": 160, "judgments": 160, "scored": 160, "failed": 0},
    }


@pytest.fixture
def cluster(db: None) -> Cluster:
    # Only rows: no worker runs in these tests, so nothing connects to it.
    return Cluster.objects.create(
        name="fake", host="127.0.0.1", port=1, username="tanuki", work_dir="/scratch/runs"
    )


@pytest.fixture
def make_job(team: Team, cluster: Cluster) -> Callable[..., Job]:
    def make(subteam: Subteam | None = None, **fields: Any) -> Job:
        values: dict[str, Any] = {
            "name": "eval 8x8b-dpo",
            "owner": team.member("member"),
            "subteam": subteam or team.sft,
            "cluster": cluster,
            "command": "python -m training.evaluate --config eval.yaml",
            "script": "#!/bin/bash\n",
            "partition": "gpu",
            "time_limit_minutes": 60,
            "state": Job.State.COMPLETED,
            "slurm_job_id": "4242",
        }
        values.update(fields)
        return Job.objects.create(**values)

    return make
