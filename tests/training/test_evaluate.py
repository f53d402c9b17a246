"""MT-Bench-style evaluation against a local chat-completions server (http.server on 127.0.0.1)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.judge import API_KEY, QUESTIONS, REFERENCES, JudgeServer
from tests.training.tiny import offline_env, run_entry_point, write_config, write_jsonl
from training.config import ConfigError, config_from_dict
from training.judge import JudgeClient, JudgeError


@pytest.fixture
def judge_server() -> Iterator[JudgeServer]:
    with JudgeServer() as server:
        yield server


def eval_config(tiny_model: Path, tmp_path: Path, base_url: str, **evaluate: Any) -> dict[str, Any]:
    bench = tmp_path / "japanese_mt_bench"
    bench.mkdir(exist_ok=True)
    write_jsonl(bench / "question.jsonl", QUESTIONS)
    write_jsonl(bench / "reference.jsonl", REFERENCES)
    return {
        "model": {"name_or_path": str(tiny_model)},
        "precision": {"dtype": "fp32", "use_cpu": True},
        "output": {"dir": str(tmp_path / "job" / "eval")},
        "evaluate": {
            "questions": str(bench / "question.jsonl"),
            "reference_answers": str(bench / "reference.jsonl"),
            "model_id": "tiny-sft",
            "temperature": 0.0,
            "max_new_tokens": 8,
            "batch_size": 4,
            "judge": {"model": "judge-x", "base_url": base_url, "backoff_initial": 0.01, "parallel": 2},
            **evaluate,
        },
        "wandb": {"mode": "disabled"},
    }


def test_evaluate_entry_point_scores_categories_and_retries_a_429(
    tiny_model: Path, tmp_path: Path, judge_server: JudgeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    judge_server.fail_first_with = 429
    run_id = str(uuid.uuid4())
    cfg = eval_config(tiny_model, tmp_path, judge_server.base_url)
    cfg["wandb"] = {"mode": "offline", "run_id": run_id, "project": "tanuki-test"}
    proc = run_entry_point(
        "evaluate", write_config(tmp_path / "eval.yaml", cfg), offline_env(OPENAI_API_KEY=API_KEY)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    out = tmp_path / "job" / "eval"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["category_averages"] == {
        "coding": 2.0,
        "extraction": 10.0,
        "humanities": None,
        "math": 4.0,
        "reasoning": None,
        "roleplay": 7.0,  # its second turn had no rating: left out, as FastChat does
        "stem": None,
        "writing": round((8 + 6 + 9) / 3, 4),
    }
    assert summary["average"] == (8 + 6 + 9 + 3 + 5 + 2 + 7 + 10) / 8
    assert summary["turn_averages"] == {"1": (8 + 9 + 3 + 2 + 7 + 10) / 6, "2": (6 + 5) / 2}
    assert (
        summary["counts"]["questions"] == 6
        and summary["counts"]["turns"] == summary["counts"]["answers"] == 9
    )
    assert (summary["counts"]["judgments"], summary["counts"]["scored"], summary["counts"]["failed"]) == (
        9,
        8,
        1,
    )
    assert summary["judge"]["model"] == "judge-x" and summary["judge"]["retries"] == 1
    assert (
        summary["question_set"]["name"] == "japanese_mt_bench"
        and len(summary["question_set"]["sha256"]) == 64
    )
    assert summary["generation"]["temperature"] == 0.0 and summary["generation"]["max_new_tokens"] == 8

    # The 429 was retried: 9 judgments from 10 requests, each with the bearer key after the first.
    assert len(judge_server.requests) == 10
    assert all(r["auth"] == f"Bearer {API_KEY}" for r in judge_server.requests)
    math_prompts = [
        r["body"]["messages"][-1]["content"] for r in judge_server.requests if "QID-3-T1" in str(r["body"])
    ]
    assert all("4です。" in p for p in math_prompts)  # math is judged against the reference answer

    # FastChat's files.
    answers = [
        json.loads(line) for line in (out / "model_answer" / "tiny-sft.jsonl").read_text().splitlines()
    ]
    assert {a["question_id"]: len(a["choices"][0]["turns"]) for a in answers} == {
        1: 2,
        2: 1,
        3: 2,
        4: 1,
        5: 2,
        6: 1,
    }
    assert all(a["model_id"] == "tiny-sft" for a in answers)
    judgments = [
        json.loads(line)
        for line in (out / "model_judgment" / "judge-x_single.jsonl").read_text().splitlines()
    ]
    assert len(judgments) == 9
    assert set(judgments[0]) == {
        "question_id",
        "model",
        "judge",
        "user_prompt",
        "judgment",
        "score",
        "turn",
        "tstamp",
    }
    by_key = {(j["question_id"], j["turn"]): j for j in judgments}
    assert by_key[(1, 1)]["judge"] == ["judge-x", "single-v1"]
    assert by_key[(1, 2)]["judge"] == ["judge-x", "single-v1-multi-turn"]
    assert by_key[(3, 1)]["judge"] == ["judge-x", "single-math-v1"]
    assert by_key[(3, 2)]["judge"] == ["judge-x", "single-math-v1-multi-turn"]
    assert by_key[(5, 2)]["score"] == -1 and by_key[(1, 1)]["score"] == 8.0

    # The summary went to the offline W&B run under the job's directory.
    assert list((tmp_path / "job" / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))

    # A rerun (a requeued job) keeps the answers and scored judgments: only the unscored one is asked again.
    from training import evaluate

    rerun = config_from_dict(eval_config(tiny_model, tmp_path, judge_server.base_url), kind="evaluate")
    monkeypatch.setenv("OPENAI_API_KEY", "wrong-key")
    with pytest.raises(ConfigError) as caught:  # a refused key is a setup error, named as such
        evaluate.run(rerun)
    assert caught.value.key == "evaluate.judge" and "HTTP 401" in str(caught.value)
    assert len(judge_server.requests) == 11

    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    evaluate.run(config_from_dict(eval_config(tiny_model, tmp_path, judge_server.base_url), kind="evaluate"))
    assert len(judge_server.requests) == 12


def test_judge_client_gives_up_after_retries_and_stops_on_a_refusal(judge_server: JudgeServer) -> None:
    waits: list[float] = []
    client = JudgeClient(
        judge_server.base_url,
        "judge-x",
        API_KEY,
        max_retries=3,
        backoff_initial=0.5,
        backoff_max=1.0,
        sleep=waits.append,
    )
    judge_server.always = 503
    with pytest.raises(JudgeError) as caught:
        client.complete("system", "QID-1-T1")
    assert caught.value.transient and len(judge_server.requests) == 4
    assert waits == [0.0, 0.0, 0.0]  # the server's Retry-After: 0 wins over the backoff

    judge_server.always = None
    bad = JudgeClient(judge_server.base_url, "judge-x", "wrong-key", max_retries=3, sleep=waits.append)
    with pytest.raises(JudgeError) as caught:
        bad.complete("system", "QID-1-T1")
    assert not caught.value.transient and "HTTP 401" in str(caught.value)
    assert len(judge_server.requests) == 5  # no retry for a refusal

    ok = JudgeClient(judge_server.base_url, "judge-x", API_KEY)
    assert "[[8]]" in ok.complete("system", "QID-1-T1")


def test_judge_client_backs_off_exponentially_on_connection_errors() -> None:
    waits: list[float] = []
    client = JudgeClient(
        "http://127.0.0.1:9/v1",
        "judge-x",
        None,
        max_retries=3,
        backoff_initial=0.5,
        backoff_max=1.5,
        sleep=waits.append,
        timeout=2,
    )
    with pytest.raises(JudgeError) as caught:
        client.complete("", "hello")
    assert caught.value.transient
    assert waits == [0.5, 1.0, 1.5]
