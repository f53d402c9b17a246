"""Collect the results of finished eval jobs: a step of the worker's cycle (`SCHEDULER_STEPS`).

Once per poll of a reachable cluster, the completed eval jobs (`Job.kind == "eval"`) that have no
result yet are read over the worker's SFTP connection: `<run_dir>/out/summary.json`, the judgment file
`<run_dir>/out/model_judgment/<judge>_single.jsonl` and the question file named in the summary; then
`services.record_from_job` records them. With nothing to collect the step costs one query.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import posixpath
import uuid
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.utils import timezone

from evals import services
from evals.models import EvalResult
from scheduler import identity
from scheduler.steps import Poll

if TYPE_CHECKING:
    from scheduler.models import Cluster, Job
    from scheduler.ssh import Connection

log = logging.getLogger("evals.collect")

OUTPUT_DIR = "out"  # the eval config's output.dir, relative to the run directory
LOOKBACK = dt.timedelta(days=3)  # older jobs are not looked at again
MAX_JOBS_PER_POLL = 5
MAX_ATTEMPTS = 3  # per job and worker process: a job whose files are missing or bad is not read forever
MAX_FILE_BYTES = 64 * 1024 * 1024

_attempts: dict[uuid.UUID, int] = {}


def pending_jobs(cluster: Cluster) -> list[Job]:
    from scheduler.models import Job

    return list(
        Job.objects.filter(
            cluster=cluster,
            kind=Job.Kind.EVAL,
            state=Job.State.COMPLETED,
            eval_result__isnull=True,
            ended_at__gte=timezone.now() - LOOKBACK,
        )
        .select_related("cluster", "owner", "subteam")
        .order_by("ended_at")[:MAX_JOBS_PER_POLL]
    )


def read_file(conn: Connection, path: str) -> bytes | None:
    """A whole remote file; None when it is missing or empty. Refuses files past MAX_FILE_BYTES."""
    data = b""
    while chunk := conn.read_from(path, len(data)):
        data += chunk
        if len(data) > MAX_FILE_BYTES:
            raise ValidationError(f"{path} is larger than {MAX_FILE_BYTES} bytes")
    return data or None


def _judgment_file(conn: Connection, out: str, summary: dict[str, Any]) -> str | None:
    """The `*_single.jsonl` under model_judgment/ (the judge's, when there are several)."""
    directory = f"{out}/model_judgment"
    names = [
        name
        for name, _size, is_dir in conn.listdir(directory)
        if not is_dir and name.endswith("_single.jsonl")
    ]
    if not names:
        return None
    judge = summary.get("judge")
    judge_model = str(judge.get("model", "")) if isinstance(judge, dict) else ""
    wanted = next((n for n in names if judge_model and n.startswith(judge_model.replace("/", "_"))), names[0])
    return f"{directory}/{wanted}"


def _questions_path(job: Job, summary: dict[str, Any]) -> str | None:
    question_set = summary.get("question_set")
    path = question_set.get("path") if isinstance(question_set, dict) else None
    if not isinstance(path, str) or not path or "\n" in path:
        return None
    return path if path.startswith("/") else posixpath.normpath(f"{job.run_dir}/{path}")


def collect_job(job: Job, conn: Connection) -> EvalResult | None:
    """Read one eval job's output and record it; None when its summary.json is not there."""
    out = f"{job.run_dir}/{OUTPUT_DIR}"
    raw = read_file(conn, f"{out}/summary.json")
    if raw is None:
        return None
    try:
        summary = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValidationError(f"summary.json is not JSON: {error}") from error
    if not isinstance(summary, dict):
        raise ValidationError("summary.json must hold a JSON object")
    judgment_path = _judgment_file(conn, out, summary)
    judgments = read_file(conn, judgment_path) if judgment_path else None
    questions_path = _questions_path(job, summary)
    questions = read_file(conn, questions_path) if questions_path else None
    try:
        return services.record_from_job(job, summary, judgments, questions)
    except ValidationError:
        if questions is None:
            raise
        # A question file that changed since the run must not cost the scores: keep them without it.
        log.warning(
            "eval job %s: the question file did not match its judgments; scores kept without it", job.pk
        )
        return services.record_from_job(job, summary, judgments, None)


def collect_eval_results(poll: Poll) -> None:
    """The worker step: record the results of this cluster's finished eval jobs."""
    for job in pending_jobs(poll.cluster):
        tries = _attempts.get(job.pk, 0)
        if tries >= MAX_ATTEMPTS:
            continue
        try:
            conn = poll.for_job(job)  # the run directory is the member's own (0700)
        except identity.AccountError:
            continue  # tried again once the member's login works; their account says why
        _attempts[job.pk] = tries + 1
        try:
            result = collect_job(job, conn)
        except ValidationError as error:
            log.warning(
                "eval job %s: its output could not be recorded: %s", job.pk, "; ".join(error.messages)
            )
            continue
        if result is None:
            log.info("eval job %s: no summary.json under %s/%s yet", job.pk, job.run_dir, OUTPUT_DIR)
        else:
            _attempts.pop(job.pk, None)
            log.info("eval job %s: recorded %s (average %s)", job.pk, result.model_name, result.average)
