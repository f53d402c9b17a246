"""LLM-as-a-judge for MT-Bench-style single-answer grading over an OpenAI-compatible chat-completions API.

Plain HTTP (urllib): POST ``{base_url}/chat/completions`` with a bearer key, retried with exponential
backoff on HTTP 429 and 5xx and on connection errors; other HTTP errors (401, 404, ...) are a setup
problem and stop the evaluation. The prompts follow FastChat's single-answer grading layout (prompt
names ``single-v1``, ``single-math-v1`` and their ``-multi-turn`` forms, placeholders ``{question}``,
``{answer}``, ``{ref_answer_1}``, ``{question_1}``, ``{answer_2}``, ...), and ask for a rating in
``[[N]]`` form; the built-in wording expects Japanese answers, as Japanese MT-Bench does. A
FastChat-format ``judge_prompts.jsonl`` (``evaluate.judge.prompts_file``) replaces them.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

CATEGORIES: tuple[str, ...] = (
    "coding",
    "extraction",
    "humanities",
    "math",
    "reasoning",
    "roleplay",
    "stem",
    "writing",
)
NEED_REF_CATS: tuple[str, ...] = ("math", "reasoning", "coding")
# FastChat's sampling temperature per category (gen_model_answer.py), used when evaluate.temperature is null.
TEMPERATURE_BY_CATEGORY: dict[str, float] = {
    "writing": 0.7,
    "roleplay": 0.7,
    "extraction": 0.0,
    "math": 0.0,
    "coding": 0.0,
    "reasoning": 0.0,
    "stem": 0.1,
    "humanities": 0.1,
}
DEFAULT_BASE_URL = "https://api.openai.com/v1"

_SCORE = re.compile(r"\[\[(\d+\.?\d*)\]\]")
_SCORE_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")

_JAPANESE = (
    "The user expects the answer in Japanese: lower the score of a response written in another language "
    "unless the question asks for one, and give the lowest score to a response with no Japanese at all, "
    "except where only code or a calculation result is wanted. Write your explanation in Japanese. "
)
_RATE = (
    "Begin with a short explanation and be as objective as you can; then rate the response from 1 to 10 "
    'in exactly this format: "[[rating]]", for example "Rating: [[5]]".'
)
_GENERAL = "Consider its helpfulness, relevance, accuracy, depth, creativity and level of detail. "
_WITH_REFERENCE = (
    "Consider its correctness and helpfulness. You are given a reference answer and the assistant's answer: "
    "compare the two, and point out and correct any mistakes. "
)
_JUDGE = "Act as an impartial judge and assess the quality of the response an AI assistant gave to the user question below. "
_JUDGE_SECOND = (
    "Act as an impartial judge and assess the quality of the response an AI assistant gave to the user "
    "question below. Judge its answer to the second user question. "
)
_CONVERSATION = (
    "<|The Start of Assistant A's Conversation with User|>\n\n### User:\n{question_1}\n\n### Assistant A:\n"
    "{answer_1}\n\n### User:\n{question_2}\n\n### Assistant A:\n{answer_2}\n\n"
    "<|The End of Assistant A's Conversation with User|>"
)


@dataclass(frozen=True)
class JudgePrompt:
    name: str
    system_prompt: str
    prompt_template: str

    @property
    def multi_turn(self) -> bool:
        return "{answer_2}" in self.prompt_template

    @property
    def ref_based(self) -> bool:
        return "{ref_answer_1}" in self.prompt_template


BUILTIN_PROMPTS: dict[str, JudgePrompt] = {
    p.name: p
    for p in (
        JudgePrompt(
            "single-v1",
            "You are a helpful assistant.",
            "[Instruction]\n" + _JUDGE + _GENERAL + _JAPANESE + _RATE + "\n\n[Question]\n{question}\n\n"
            "[The Start of Assistant's Answer]\n{answer}\n[The End of Assistant's Answer]",
        ),
        JudgePrompt(
            "single-math-v1",
            "You are a helpful assistant.",
            "[Instruction]\n"
            + _JUDGE
            + _WITH_REFERENCE
            + _JAPANESE
            + _RATE
            + "\n\n[Question]\n{question}\n\n"
            "[The Start of Reference Answer]\n{ref_answer_1}\n[The End of Reference Answer]\n\n"
            "[The Start of Assistant's Answer]\n{answer}\n[The End of Assistant's Answer]",
        ),
        JudgePrompt("single-v1-multi-turn", _JUDGE_SECOND + _GENERAL + _JAPANESE + _RATE, _CONVERSATION),
        JudgePrompt(
            "single-math-v1-multi-turn",
            _JUDGE_SECOND + _WITH_REFERENCE + _JAPANESE + _RATE,
            "<|The Start of Reference Answer|>\n\n### User:\n{question_1}\n\n### Reference answer:\n{ref_answer_1}\n\n"
            "### User:\n{question_2}\n\n### Reference answer:\n{ref_answer_2}\n\n<|The End of Reference Answer|>\n\n\n"
            + _CONVERSATION,
        ),
    )
}


class JudgeError(RuntimeError):
    """The judge endpoint refused the request, or (``transient``) kept failing past max_retries."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


def load_prompts(path: str | None) -> dict[str, JudgePrompt]:
    """The built-in prompts, or those of a FastChat-format judge_prompts.jsonl (name, system_prompt, prompt_template)."""
    if path is None:
        return dict(BUILTIN_PROMPTS)
    prompts: dict[str, JudgePrompt] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            prompts[row["name"]] = JudgePrompt(
                row["name"], row.get("system_prompt", ""), row["prompt_template"]
            )
    missing = [name for name in BUILTIN_PROMPTS if name not in prompts]
    if missing:
        raise ValueError(f"{path} lacks the prompt(s) {', '.join(missing)}")
    return prompts


def prompt_name(category: str, turn: int, has_reference: bool) -> str:
    math = category in NEED_REF_CATS and has_reference
    return ("single-math-v1" if math else "single-v1") + ("-multi-turn" if turn == 2 else "")


def render(
    prompt: JudgePrompt, questions: list[str], answers: list[str], references: list[str] | None
) -> str:
    if prompt.multi_turn:
        fields = {
            "question_1": questions[0],
            "question_2": questions[1],
            "answer_1": answers[0],
            "answer_2": answers[1],
        }
        if references:
            fields |= {
                "ref_answer_1": references[0],
                "ref_answer_2": references[1] if len(references) > 1 else "",
            }
    else:
        fields = {"question": questions[0], "answer": answers[0]}
        if references:
            fields["ref_answer_1"] = references[0]
    return prompt.prompt_template.format(**fields)


def parse_score(judgment: str) -> float:
    """FastChat's rule: the first ``[[N]]`` (else ``[N]``) in the judgment, -1 when there is none."""
    match = _SCORE.search(judgment) or _SCORE_BACKUP.search(judgment)
    if not match:
        return -1.0
    try:
        return float(match.group(1))
    except ValueError:  # pragma: no cover - the pattern only matches numbers
        return -1.0


class JudgeClient:
    """One judge model behind an OpenAI-compatible ``/chat/completions`` endpoint."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None,
        *,
        temperature: float = 0.0,
        max_tokens: int = 2048,
        timeout: float = 120.0,
        max_retries: int = 8,
        backoff_initial: float = 2.0,
        backoff_max: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key = api_key
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.sleep = sleep
        self.retries = 0  # transient failures retried so far (all threads; approximate)

    def complete(self, system: str, user: str) -> str:
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": user}
        ]
        body = json.dumps(
            {
                "model": self.model,
                "messages": messages,
                "temperature": self.temperature,
                "max_tokens": self.max_tokens,
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = "no attempt"
        for attempt in range(self.max_retries + 1):
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")  # noqa: S310  # http(s) only: checked in config
            retry_after: float | None = None
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310  # as above
                    return _content(json.loads(response.read()))
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode("utf-8", "replace")[:500]
                if exc.code != 429 and exc.code < 500:
                    raise JudgeError(f"{self.url}: HTTP {exc.code}: {detail}") from exc
                last = f"HTTP {exc.code}: {detail}"
                retry_after = _retry_after(exc.headers)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if attempt == self.max_retries:
                break
            self.retries += 1
            delay = min(self.backoff_max, self.backoff_initial * 2**attempt)
            self.sleep(min(self.backoff_max, retry_after) if retry_after is not None else delay)
        raise JudgeError(
            f"{self.url}: gave up after {self.max_retries + 1} attempts; last: {last}", transient=True
        )


def _content(payload: dict[str, Any]) -> str:
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise JudgeError(f"not a chat-completions response: {json.dumps(payload)[:300]}") from exc
    return str(content or "")


def _retry_after(headers: Message | None) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
