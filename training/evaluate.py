"""Japanese MT-Bench-style evaluation: ``python -m training.evaluate --config run.yaml``.

1. Generate the model's answers to a FastChat-format question file (``question_id``, ``category``,
   ``turns``: one or two user turns), turn by turn through the tokenizer's chat template; greedy when
   the temperature is 0, FastChat's per-category temperatures when ``evaluate.temperature`` is null.
2. Judge each turn with an OpenAI-compatible chat-completions endpoint (single-answer grading, a
   ``[[N]]`` rating; -1 when the judgment has none or the judge kept failing).
3. Write, under ``output.dir``, FastChat's layout: ``model_answer/<model>.jsonl``,
   ``model_judgment/<judge>_single.jsonl``, and ``summary.json`` with the average score, per-turn and
   per-category averages (the 8 MT-Bench categories; null for a category without questions), the judge,
   the question set's name and SHA-256, the generation settings and the counts. With W&B enabled the
   summary is logged to the run.

A rerun (a requeued job) keeps the answers and the scored judgments already written and does the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.config import ConfigError, JudgeConfig, RunConfig
from training.judge import (
    CATEGORIES,
    DEFAULT_BASE_URL,
    TEMPERATURE_BY_CATEGORY,
    JudgeClient,
    JudgeError,
    JudgePrompt,
    load_prompts,
    parse_score,
    prompt_name,
    render,
)
from training.runner import cli

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

Question = dict[str, Any]
Record = dict[str, Any]


def load_questions(path: str, key: str = "evaluate.questions", source: str | None = None) -> list[Question]:
    questions: list[Question] = []
    seen: set[Any] = set()
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(key, f"{where}: not JSON: {exc}", source) from exc
        turns = row.get("turns") if isinstance(row, dict) else None
        if not isinstance(row, dict) or "question_id" not in row or not isinstance(row.get("category"), str):
            raise ConfigError(key, f"{where}: needs question_id, category and turns", source)
        if (
            not isinstance(turns, list)
            or not 1 <= len(turns) <= 2
            or not all(isinstance(t, str) for t in turns)
        ):
            raise ConfigError(key, f"{where}: turns must be a list of 1 or 2 strings", source)
        if row["question_id"] in seen:
            raise ConfigError(key, f"{where}: duplicate question_id {row['question_id']!r}", source)
        seen.add(row["question_id"])
        questions.append(row)
    if not questions:
        raise ConfigError(key, f"{path} holds no questions", source)
    return questions


def load_answer_file(path: str | Path) -> dict[Any, list[str]]:
    """question_id -> turns, from a FastChat answer file (model_answer/*.jsonl or reference_answer/*.jsonl)."""
    answers: dict[Any, list[str]] = {}
    file = Path(path)
    if file.is_file():
        for line in file.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                answers[row["question_id"]] = list(row["choices"][0]["turns"])
    return answers


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "model"


# --- answers -------------------------------------------------------------------------------------------


def generate_answers(
    cfg: RunConfig, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, questions: list[Question]
) -> dict[Any, list[str]]:
    """All turns of all questions, in batches of questions that share a temperature, one turn at a time."""
    ev = cfg.evaluate
    conversations: dict[Any, list[dict[str, str]]] = {
        q["question_id"]: ([{"role": "system", "content": ev.system_prompt}] if ev.system_prompt else [])
        for q in questions
    }
    answers: dict[Any, list[str]] = {q["question_id"]: [] for q in questions}
    for turn in (0, 1):
        groups: dict[float, list[Question]] = {}
        for q in questions:
            if turn < len(q["turns"]):
                groups.setdefault(temperature_for(cfg, q["category"]), []).append(q)
        for temperature, group in sorted(groups.items()):
            for start in range(0, len(group), ev.batch_size):
                batch = group[start : start + ev.batch_size]
                for q in batch:
                    conversations[q["question_id"]].append({"role": "user", "content": q["turns"][turn]})
                outputs = _generate(
                    cfg, model, tokenizer, [conversations[q["question_id"]] for q in batch], temperature
                )
                for q, text in zip(batch, outputs, strict=True):
                    conversations[q["question_id"]].append({"role": "assistant", "content": text})
                    answers[q["question_id"]].append(text)
    return answers


def temperature_for(cfg: RunConfig, category: str) -> float:
    if cfg.evaluate.temperature is not None:
        return cfg.evaluate.temperature
    return TEMPERATURE_BY_CATEGORY.get(category, 0.7)


def _generate(
    cfg: RunConfig,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    conversations: list[list[dict[str, str]]],
    temperature: float,
) -> list[str]:
    import torch

    prompts = [
        tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in conversations
    ]
    encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    sampling: dict[str, Any] = (
        {"do_sample": True, "temperature": temperature, "top_p": cfg.evaluate.top_p}
        if temperature > 0
        else {"do_sample": False}
    )
    with torch.no_grad():
        output = model.generate(  # type: ignore[operator]  # generate() is a method of every causal LM
            **encoded,
            max_new_tokens=cfg.evaluate.max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            **sampling,
        )
    new_tokens = output[:, encoded["input_ids"].shape[1] :]
    return [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]


# --- judgments -----------------------------------------------------------------------------------------


def judge_answers(
    cfg: RunConfig,
    client: JudgeClient,
    prompts: dict[str, JudgePrompt],
    questions: list[Question],
    model_id: str,
    answers: dict[Any, list[str]],
    references: dict[Any, list[str]],
    judgment_file: Path,
    done: dict[tuple[Any, int], Record],
) -> list[Record]:
    """One judgment per (question, turn), appended to ``judgment_file`` as each arrives; ``done`` is reused."""
    todo = [
        (q, turn)
        for q in questions
        for turn in range(1, len(q["turns"]) + 1)
        if (q["question_id"], turn) not in done
    ]
    lock = threading.Lock()
    judge_model = cfg.evaluate.judge.model

    def one(item: tuple[Question, int]) -> Record:
        q, turn = item
        qid = q["question_id"]
        refs = references.get(qid)
        prompt = prompts[prompt_name(q["category"], turn, refs is not None)]
        user_prompt = render(prompt, q["turns"], answers[qid], refs)
        try:
            judgment = client.complete(prompt.system_prompt, user_prompt)
            score = parse_score(judgment)
        except JudgeError as exc:
            if not exc.transient:
                raise
            judgment, score = f"$ERROR$ {exc}", -1.0
        record = {
            "question_id": qid,
            "model": model_id,
            "judge": [judge_model, prompt.name],
            "user_prompt": user_prompt,
            "judgment": judgment,
            "score": score,
            "turn": turn,
            "tstamp": time.time(),
        }
        with lock, judgment_file.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
        return record

    with ThreadPoolExecutor(max_workers=cfg.evaluate.judge.parallel) as pool:
        new = list(pool.map(one, todo))
    merged = {**done, **{(r["question_id"], r["turn"]): r for r in new}}
    return [merged[(q["question_id"], t)] for q in questions for t in range(1, len(q["turns"]) + 1)]


def load_judgments(path: Path, model_id: str) -> dict[tuple[Any, int], Record]:
    """Scored judgments already written for this model (a failed one, score -1, is judged again)."""
    done: dict[tuple[Any, int], Record] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                if row.get("model") == model_id and row.get("score", -1) != -1:
                    done[(row["question_id"], row["turn"])] = row
    return done


# --- summary -------------------------------------------------------------------------------------------


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def summarize(questions: list[Question], judgments: list[Record]) -> dict[str, Any]:
    """Averages over scored judgments (score -1 left out, as FastChat's show_result does)."""
    category = {q["question_id"]: q["category"] for q in questions}
    scored = [j for j in judgments if j["score"] != -1]
    by_category = {
        c: _mean([j["score"] for j in scored if category[j["question_id"]] == c]) for c in CATEGORIES
    }
    others = sorted({c for c in category.values() if c not in CATEGORIES})
    return {
        "average": _mean([j["score"] for j in scored]),
        "turn_averages": {str(t): _mean([j["score"] for j in scored if j["turn"] == t]) for t in (1, 2)},
        "category_averages": by_category,
        "other_category_averages": {
            c: _mean([j["score"] for j in scored if category[j["question_id"]] == c]) for c in others
        },
        "counts": {
            "questions": len(questions),
            "questions_per_category": {
                c: sum(1 for q in questions if q["category"] == c) for c in CATEGORIES
            },
            "turns": sum(len(q["turns"]) for q in questions),
            "judgments": len(judgments),
            "scored": len(scored),
            "failed": len(judgments) - len(scored),
        },
    }


# --- the run -------------------------------------------------------------------------------------------


def _judge_key(judge: JudgeConfig) -> str | None:
    """The judge's API key: from the file the portal staged for this job (read, never printed), else
    from the environment variable the config names."""
    if judge.api_key_file:
        try:
            return Path(judge.api_key_file).read_text(encoding="utf-8").strip() or None
        except OSError as error:
            raise ConfigError("evaluate.judge.api_key_file", f"cannot be read ({error.strerror})") from error
    return os.environ.get(judge.api_key_env) or None


def run(cfg: RunConfig) -> dict[str, Any]:
    from training import tracking

    ev = cfg.evaluate
    started = time.monotonic()
    questions = load_questions(ev.questions, source=cfg.source)
    references = load_answer_file(ev.reference_answers) if ev.reference_answers else {}
    try:
        prompts = load_prompts(ev.judge.prompts_file)
    except (ValueError, KeyError) as exc:
        raise ConfigError("evaluate.judge.prompts_file", str(exc), cfg.source) from exc
    model_id = ev.model_id or safe_name(Path(cfg.model.name_or_path.rstrip("/")).name)
    out = Path(cfg.output.dir)
    answer_file = out / "model_answer" / f"{model_id}.jsonl"
    judgment_file = out / "model_judgment" / f"{safe_name(ev.judge.model)}_single.jsonl"
    answer_file.parent.mkdir(parents=True, exist_ok=True)
    judgment_file.parent.mkdir(parents=True, exist_ok=True)

    run_ = tracking.start(cfg)
    exit_code = 1
    try:
        # 1. answers (those already written for these questions are kept)
        existing = load_answer_file(answer_file)
        missing = [q for q in questions if len(existing.get(q["question_id"], [])) != len(q["turns"])]
        load_seconds = generation_seconds = 0.0
        if missing:
            load_started = time.monotonic()
            model, tokenizer = _load_for_generation(cfg)
            gen_started = time.monotonic()
            load_seconds = gen_started - load_started
            generated = generate_answers(cfg, model, tokenizer, missing)
            generation_seconds = time.monotonic() - gen_started
            with answer_file.open("a", encoding="utf-8") as f:
                for q in missing:
                    row = {
                        "question_id": q["question_id"],
                        "answer_id": uuid.uuid4().hex,
                        "model_id": model_id,
                        "choices": [{"index": 0, "turns": generated[q["question_id"]]}],
                        "tstamp": time.time(),
                    }
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
            existing.update(generated)

        # 2. judgments
        api_key = _judge_key(ev.judge)
        client = JudgeClient(
            ev.judge.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL,
            ev.judge.model,
            api_key,
            temperature=ev.judge.temperature,
            max_tokens=ev.judge.max_tokens,
            timeout=ev.judge.timeout,
            max_retries=ev.judge.max_retries,
            backoff_initial=ev.judge.backoff_initial,
            backoff_max=ev.judge.backoff_max,
        )
        judge_started = time.monotonic()
        done = load_judgments(judgment_file, model_id)
        try:
            judgments = judge_answers(
                cfg, client, prompts, questions, model_id, existing, references, judgment_file, done
            )
        except JudgeError as exc:  # a refusal (401, 404, ...): the key, URL or model name is wrong
            raise ConfigError("evaluate.judge", f"the judge refused the request: {exc}", cfg.source) from exc
        judge_seconds = time.monotonic() - judge_started

        # 3. summary
        summary = summarize(questions, judgments)
        summary["counts"]["answers"] = sum(len(existing[q["question_id"]]) for q in questions)
        digest = hashlib.sha256(Path(ev.questions).read_bytes()).hexdigest()
        summary = {
            "model_id": model_id,
            "model_path": cfg.model.name_or_path,
            "judge": {
                "model": ev.judge.model,
                "base_url": client.url,
                "prompts": sorted({j["judge"][1] for j in judgments}),
                "prompts_file": ev.judge.prompts_file,
                "retries": client.retries,
            },
            "question_set": {
                "name": ev.question_set or Path(ev.questions).resolve().parent.name,
                "path": ev.questions,
                "sha256": digest,
            },
            "generation": {
                "temperature": ev.temperature,
                "temperature_by_category": None if ev.temperature is not None else TEMPERATURE_BY_CATEGORY,
                "top_p": ev.top_p,
                "max_new_tokens": ev.max_new_tokens,
                "batch_size": ev.batch_size,
                "seed": cfg.training.seed,
                "system_prompt": ev.system_prompt,
            },
            **summary,
            "files": {"answers": str(answer_file), "judgments": str(judgment_file)},
            "seconds": {
                "load_model": round(load_seconds, 3),
                "generation": round(generation_seconds, 3),
                "judging": round(judge_seconds, 3),
                "total": round(time.monotonic() - started, 3),
            },
            "tstamp": time.time(),
        }
        (out / "summary.json").write_text(
            json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        if run_ is not None:
            _log_to_wandb(run_, summary, judgments)
        exit_code = 0
    finally:
        tracking.finish(run_, exit_code)
    return summary


def _load_for_generation(cfg: RunConfig) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    import torch

    from training.modeling import load_model, load_tokenizer

    torch.manual_seed(cfg.training.seed)
    tokenizer = load_tokenizer(cfg, padding_side="left")
    if not tokenizer.chat_template:
        raise ConfigError(
            "tokenizer.chat_template", "the tokenizer has no chat template; set one", cfg.source
        )
    model = load_model(cfg)
    device = "cuda" if torch.cuda.is_available() and not cfg.precision.use_cpu else "cpu"
    model.to(device)  # type: ignore[arg-type]  # nn.Module.to accepts a device name
    model.eval()
    return model, tokenizer


def _log_to_wandb(run: Any, summary: dict[str, Any], judgments: list[Record]) -> None:
    metrics: dict[str, Any] = {"mtbench/average": summary["average"]}
    metrics |= {f"mtbench/turn{t}": v for t, v in summary["turn_averages"].items()}
    metrics |= {f"mtbench/{c}": v for c, v in summary["category_averages"].items()}
    run.log({k: v for k, v in metrics.items() if v is not None})
    run.summary.update({"mtbench": summary})
    import wandb

    table = wandb.Table(columns=["question_id", "turn", "score", "judge_prompt", "judgment"])
    for j in judgments:
        table.add_data(str(j["question_id"]), j["turn"], j["score"], j["judge"][1], j["judgment"])
    run.log({"mtbench/judgments": table})


def main(argv: Sequence[str] | None = None) -> int:
    return cli("evaluate", run, argv)


if __name__ == "__main__":
    sys.exit(main())
