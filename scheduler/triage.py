"""Why a job ended badly, in one line, with the log lines that prove it and the fix as an action.

`SIGNATURES` is the one table: each row says which end states it applies to, what in the last log
lines (or the exit code) gives it away, a sentence for the member, and which fixes fit. The first row
that matches wins, so specific rows come before general ones (CUDA out of memory before "a Python
traceback"). Adding a failure the team keeps meeting is one more row and one more recorded log
excerpt in tests/scheduler/recorded/triage/.

The worker's `diagnose_jobs` step classifies each job that ended badly once its logs are read to the
end (`Job.logs_final`): it reads the stored tails, never the cluster, so a cycle sends no more commands.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import hostlist  # python-hostlist: Slurm's `node[1-3,5]` notation
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from scheduler import logs
from scheduler.models import Job, JobEvent, JobLogChunk

# Bytes of each stream's end that are read to classify (a huge log costs no more than this).
TAIL_BYTES = 64 << 10
# Evidence lines kept per diagnosis (each cut to EVIDENCE_CHARS characters).
MAX_EVIDENCE = 6
EVIDENCE_CHARS = 300
# Jobs diagnosed per cluster per cycle (the rest wait for the next one).
JOBS_PER_CYCLE = 50
SLURM_STREAM = "slurm"  # the evidence "stream" of what Slurm itself said (Job.reason)
METRICS_STREAM = "metrics"  # the loss watch's alerts on the ingested series
BAD_STATES = frozenset(
    {
        Job.State.FAILED,
        Job.State.TIMEOUT,
        Job.State.OUT_OF_MEMORY,
        Job.State.NODE_FAIL,
        Job.State.PREEMPTED,
    }
)


class Fix:
    """The one-click fixes: each makes a resubmission with one change (see `services.fix_job`)."""

    RESUME = "resume"  # resubmit, resuming from the run's last checkpoint
    EXCLUDE_NODE = "exclude_node"  # resubmit with --exclude=<the node that failed>
    HALVE_MICRO_BATCH = "halve_micro_batch"  # micro batch / 2, accumulation × 2: the same global batch
    EXTEND_TIME = "extend_time"  # a longer time limit, within the partition's
    EDIT = "edit"  # the resubmit form, to correct what was refused

    LABELS: dict[str, Promise] = {
        RESUME: _("Resubmit from the last checkpoint"),
        EXCLUDE_NODE: _("Resubmit excluding the node"),
        HALVE_MICRO_BATCH: _("Halve the micro batch, double accumulation"),
        EXTEND_TIME: _("Resubmit with a longer time limit"),
        EDIT: _("Edit and resubmit"),
    }


@dataclass(frozen=True)
class Signature:
    code: str
    title: Promise
    explanation: Promise
    # Searched in each log line (case-insensitive); None: the end state or exit code alone decides.
    pattern: re.Pattern[str] | None = None
    states: frozenset[str] = BAD_STATES
    exit_codes: frozenset[int] | None = None  # when set, only these exit codes
    # Which way a row decides when it has both a pattern and states: the pattern must match, unless
    # the state is one of `states_alone` (the end state proves it by itself).
    states_alone: frozenset[str] = frozenset()
    fixes: tuple[str, ...] = ()


def _re(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{a})" for a in alternatives), re.IGNORECASE)


# The table. Order matters: the first match wins.
SIGNATURES: tuple[Signature, ...] = (
    Signature(
        "unsatisfiable",
        _("Slurm has no nodes that match what it asks for"),
        _(
            "Slurm refused the job at submission: no nodes of the partition can give what it asks for "
            "(more nodes than the partition has, or more GPUs, CPUs or memory per node). Ask for less, "
            "or another partition."
        ),
        _re(
            r"Requested node configuration is not available",
            r"Node count specification invalid",
            r"Requested partition configuration not available",
        ),
        fixes=(Fix.EDIT,),
    ),
    Signature(
        "account_refused",
        _("Slurm refused the subteam's account for your cluster user"),
        _(
            "Your cluster user is not (yet) in the subteam's Slurm account. The portal adds it when you "
            "join the subteam, within a minute or two: if you joined just now, resubmit shortly; "
            "otherwise your member page shows the association's state, and the management team can fix it."
        ),
        _re(r"Invalid account or account/partition combination specified"),
        fixes=(Fix.EDIT,),
    ),
    Signature(
        "node_failure",
        _("A node failed"),
        _(
            "Slurm lost a node the job ran on (hardware, driver or network). It is not your code: "
            "resubmit without that node, from the last checkpoint."
        ),
        _re(r"DUE TO NODE FAILURE", r"Node \S+ not responding", r"Kill task failed"),
        states_alone=frozenset({Job.State.NODE_FAIL}),
        fixes=(Fix.EXCLUDE_NODE, Fix.RESUME),
    ),
    Signature(
        "time_limit",
        _("The time limit was reached"),
        _(
            "Slurm stopped the job at its time limit. Resume from the last checkpoint, with a longer "
            "limit if the partition allows one."
        ),
        _re(r"DUE TO TIME LIMIT"),
        states_alone=frozenset({Job.State.TIMEOUT}),
        fixes=(Fix.EXTEND_TIME, Fix.RESUME),
    ),
    Signature(
        "cuda_oom",
        _("CUDA out of memory"),
        _(
            "A GPU ran out of memory. Halve the micro batch and double gradient accumulation: the global "
            "batch, and so the training, stays the same."
        ),
        _re(
            r"CUDA out of memory",
            r"torch\.(?:cuda\.)?OutOfMemoryError",
            r"CUBLAS_STATUS_ALLOC_FAILED",
            r"cudaErrorMemoryAllocation",
        ),
        fixes=(Fix.HALVE_MICRO_BATCH,),
    ),
    Signature(
        "host_oom",
        _("Killed for using too much memory"),
        _(
            "The job used more of the node's memory (RAM, not GPU) than Slurm allowed and was killed. "
            "Load data lazily or with fewer data-loader workers, or ask for more memory."
        ),
        _re(
            r"oom[_-]kill event", r"Out of memory: Killed process", r"oom-kill:", r"Exceeded job memory limit"
        ),
        states_alone=frozenset({Job.State.OUT_OF_MEMORY}),
        fixes=(Fix.EDIT,),
    ),
    Signature(
        "nccl",
        _("NCCL timeout or communication error"),
        _(
            "The GPUs stopped hearing from each other: a collective timed out or NCCL failed. Often one "
            "bad node or link; resubmit from the last checkpoint, excluding the node if one is named."
        ),
        _re(
            r"Watchdog caught collective operation timeout",
            r"NCCL (?:error|WARN|timeout)",
            r"ncclSystemError|ncclInternalError|ncclUnhandledCudaError|ncclRemoteError",
            r"DistBackendError",
        ),
        fixes=(Fix.RESUME, Fix.EXCLUDE_NODE),
    ),
    Signature(
        "loss_nan",
        _("The loss became NaN or exploded"),
        _(
            "Training diverged: the loss is not a number. Resume from a checkpoint before the spike with a "
            "lower learning rate or stronger gradient clipping; check the data around that step."
        ),
        _re(
            r"""['"]?\bloss['"]?\s*[:=]\s*['"]?(?:nan|-?inf)\b""",
            r"\bloss (?:is|became) (?:nan|inf)",
            r"non-finite loss",
            r"^loss spike at step \d+",
        ),
        fixes=(Fix.RESUME,),
    ),
    Signature(
        "config_refused",
        _("The run config was refused"),
        _(
            "The training program checked run.yaml and refused it before using a GPU. The line names the "
            "entry and why: correct it in the form and resubmit."
        ),
        _re(r"^config error: "),
        exit_codes=frozenset({2}),
        fixes=(Fix.EDIT,),
    ),
    Signature(
        "hf_access",
        _("Hugging Face refused access"),
        _(
            "Hugging Face answered 401/403 or the repository is gated: log in on the cluster "
            "(huggingface-cli login as your own user), accept the model's licence on its page, or check "
            "the name."
        ),
        _re(
            r"GatedRepoError",
            r"Cannot access gated repo",
            r"Access to model \S+ is restricted",
            r"40[13] Client Error",
            r"Invalid user token|Invalid credentials in Authorization header",
            r"RepositoryNotFoundError",
            r"You are trying to access a gated repo",
        ),
        fixes=(Fix.EDIT,),
    ),
    Signature(
        "disk_quota",
        _("Out of disk space or quota"),
        _(
            "A write failed: the disk or your quota is full. Remove old checkpoints (keep fewer with "
            "save_total_limit) or write to a directory with room, then resume."
        ),
        _re(r"Disk quota exceeded", r"No space left on device", r"\[Errno 122\]", r"\[Errno 28\]"),
        fixes=(Fix.RESUME,),
    ),
    Signature(
        "encoding",
        _("A file is not UTF-8"),
        _(
            "A data or config file could not be read as UTF-8 (often Shift_JIS/CP932 from a Japanese "
            "Windows tool). Convert it, e.g. `iconv -f cp932 -t utf-8`, and resubmit."
        ),
        _re(r"UnicodeDecodeError", r"codec can't decode byte"),
        fixes=(Fix.EDIT,),
    ),
    Signature(
        "not_found",
        _("A command or Python module was not found"),
        _(
            "The job's environment lacks a command or module: usually the preamble activates the wrong "
            "conda/venv path, or a package is not installed there. Check the preamble's paths."
        ),
        _re(
            r"command not found",
            r"ModuleNotFoundError: No module named",
            r"EnvironmentLocationNotFound|Could not find conda environment",
            r"No such file or directory: '?(?:python|conda|torchrun|srun)",
        ),
        fixes=(Fix.EDIT,),
    ),
    Signature(
        "traceback",
        _("The program raised an error"),
        _("A Python exception ended the run; the last frame and the error are below."),
        _re(r"^Traceback \(most recent call last\):"),
        fixes=(Fix.EDIT,),
    ),
)
UNKNOWN = Signature(
    "unknown",
    _("Ended badly, cause not recognised"),
    _("No known failure matched the last log lines; they are below."),
    fixes=(Fix.EDIT,),
)
# Set by the worker's preflight (scheduler.preflight), not read from a log: the job never reached Slurm.
PREFLIGHT = Signature(
    "preflight",
    _("A file or directory the run needs is missing or unreadable, or there is no room to write"),
    _(
        "Checked over your own login before sending the job: nothing reached Slurm and no GPU waited. "
        "Correct the path (or its permissions), or free space under your quota, and resubmit."
    ),
    fixes=(Fix.EDIT,),
)
BY_CODE: dict[str, Signature] = {s.code: s for s in (*SIGNATURES, UNKNOWN, PREFLIGHT)}

_FRAME_RE = re.compile(r'^\s*File "([^"]+)", line (\d+), in (.+)$')
_SLURM_NODE_RE = re.compile(r"\bON ([A-Za-z0-9][\w.-]*) CANCELLED|\bNode ([A-Za-z0-9][\w.-]*) not responding")


@dataclass
class Evidence:
    stream: str
    line: int  # 1-based, within the tail that was read
    text: str


@dataclass
class Diagnosis:
    code: str
    evidence: list[Evidence] = field(default_factory=list)
    node: str = ""  # a node the log or Slurm names as the culprit
    last_frame: str = ""  # `file:line in function` of a traceback's last frame
    error: str = ""  # the exception line under it

    @property
    def signature(self) -> Signature:
        return BY_CODE.get(self.code, UNKNOWN)

    def as_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "evidence": [e.__dict__ for e in self.evidence],
            "node": self.node,
            "last_frame": self.last_frame,
            "error": self.error,
        }


def classify(
    state: str,
    exit_code: int | None,
    streams: Sequence[tuple[str, str]],
    node_list: str = "",
) -> Diagnosis:
    """The first signature that fits the end state, exit code and log tails ((stream, text), stderr
    first). Unknown when none does; never raises."""
    lines = [(stream, number, line) for stream, text in streams for number, line in _numbered(text)]
    for signature in SIGNATURES:
        if state not in signature.states:
            continue
        if signature.exit_codes is not None and exit_code not in signature.exit_codes:
            continue
        hits = [hit for hit in lines if signature.pattern and signature.pattern.search(hit[2])]
        if not hits and state not in signature.states_alone:
            continue
        return _diagnosis(signature, hits, lines, node_list)
    return _diagnosis(UNKNOWN, [], lines, node_list)


def _numbered(text: str) -> Iterable[tuple[int, str]]:
    return enumerate(text.splitlines(), start=1)


def _diagnosis(
    signature: Signature, hits: list[tuple[str, int, str]], lines: list[tuple[str, int, str]], node_list: str
) -> Diagnosis:
    diagnosis = Diagnosis(signature.code)
    chosen = hits[-MAX_EVIDENCE:] if hits else [hit for hit in lines if hit[2].strip()][-3:]
    diagnosis.evidence = [Evidence(s, n, t.rstrip()[:EVIDENCE_CHARS]) for s, n, t in chosen]
    frame, error = _last_frame(lines)
    if frame:
        diagnosis.last_frame, diagnosis.error = frame, error
        if signature.code in ("traceback", "unknown") and error:
            diagnosis.evidence.append(Evidence(*_find(lines, error)))
    if Fix.EXCLUDE_NODE in signature.fixes:
        diagnosis.node = _culprit(hits, lines, node_list)
    return diagnosis


def _last_frame(lines: list[tuple[str, int, str]]) -> tuple[str, str]:
    """The last `File "...", line N, in f` of the last traceback and the exception line after it."""
    frame, error = "", ""
    for index, (_stream, _number, text) in enumerate(lines):
        match = _FRAME_RE.match(text)
        if match:
            frame = f"{match[1]}:{match[2]} in {match[3].strip()}"
            error = ""
            for _s, _n, after in lines[index + 1 : index + 4]:
                if after and not after.startswith((" ", "\t")) and not _FRAME_RE.match(after):
                    error = after.strip()[:EVIDENCE_CHARS]
                    break
    return frame, error


def _find(lines: list[tuple[str, int, str]], text: str) -> tuple[str, int, str]:
    for stream, number, line in reversed(lines):
        if line.strip()[:EVIDENCE_CHARS] == text:
            return stream, number, text
    return "", 0, text


def _culprit(hits: list[tuple[str, int, str]], lines: list[tuple[str, int, str]], node_list: str) -> str:
    """The node the log blames: one of the job's nodes named in a matching line, else in any line (the
    last mention wins), else Slurm's `ON <node>`; a job on one node blames that node."""
    known = _expand(node_list)
    if known:
        words = re.compile(r"(?<![\w.-])(" + "|".join(map(re.escape, known)) + r")(?![\w-])")
        for _stream, _number, text in [*reversed(hits), *reversed(lines)]:
            found = words.findall(text)
            if found:
                return str(found[-1])
        return known[0] if len(known) == 1 else ""
    for _stream, _number, text in reversed(hits):
        match = _SLURM_NODE_RE.search(text)
        if match:
            return match[1] or match[2]
    return ""


def _expand(node_list: str) -> list[str]:
    if not node_list:
        return []
    try:
        return list(hostlist.expand_hostlist(node_list))
    except hostlist.BadHostlist:
        return []


# --- the worker step ---------------------------------------------------------------------------------


def diagnose_jobs(poll: Any) -> None:
    """Jobs on this cluster that ended badly and whose logs are read to the end: classify each once.
    Reads the stored log tails only (no remote command)."""
    jobs = list(
        Job.objects.filter(
            cluster=poll.cluster, state__in=BAD_STATES, logs_final=True, diagnosis__isnull=True
        )
        .only("id", "state", "exit_code", "node_list", "kind", "reason")
        .order_by("ended_at")[:JOBS_PER_CYCLE]
    )
    for job in jobs:
        diagnose(job)


def diagnose(job: Job) -> Diagnosis:
    """Classify a job from its stored logs and record the result on it."""
    # What Slurm said (sbatch's refusal, a pending reason) first, then the log tails, then what the
    # loss watch saw in the ingested series (metrics.watch records it as loss_alert events).
    alerts = JobEvent.objects.filter(job=job, kind=JobEvent.Kind.LOSS_ALERT).order_by("at")[:MAX_EVIDENCE]
    streams = [(SLURM_STREAM, job.reason)] + [
        (stream, tail_text(job, stream)) for stream in (JobLogChunk.Stream.STDERR, JobLogChunk.Stream.STDOUT)
    ]
    streams.append((METRICS_STREAM, "\n".join(a.message for a in alerts)))
    diagnosis = classify(job.state, job.exit_code, streams, job.node_list)
    record = diagnosis.as_json() | {"at": timezone.now().isoformat()}
    Job.objects.filter(pk=job.pk).update(diagnosis=record)
    job.diagnosis = record
    return diagnosis


def tail_text(job: Job, stream: str, size: int = TAIL_BYTES) -> str:
    """The last `size` bytes (about) of a stored stream, from a whole line on."""
    end = (
        JobLogChunk.objects.filter(job=job, stream=stream)
        .order_by("-offset")
        .values_list("offset", "size")
        .first()
    )
    if end is None:
        return ""
    start = max(0, end[0] + end[1] - size)
    text, _next = logs.log_text(job, stream, start, limit=size + (1 << 16))
    if start > 0:
        text = text.partition("\n")[2]  # the first line is cut
    return text


def preflight_diagnosis(problems: Sequence[object]) -> dict[str, Any]:
    """The diagnosis of a job the preflight kept off Slurm: each problem is a line of evidence."""
    evidence = [
        Evidence("preflight", n, str(p)[:EVIDENCE_CHARS]) for n, p in enumerate(problems[:MAX_EVIDENCE], 1)
    ]
    return Diagnosis(PREFLIGHT.code, evidence).as_json() | {"at": timezone.now().isoformat()}


def summary(job: Job, offered: Sequence[str] | None = None) -> dict[str, Any] | None:
    """The job's diagnosis for pages and the API: code, title, explanation, evidence, and the one-click
    fixes (those of `offered` when given: `scheduler.fixes.offered` knows which apply to this job)."""
    record = job.diagnosis
    if not record:
        return None
    signature = BY_CODE.get(record.get("code", ""), UNKNOWN)
    return {
        "code": signature.code,
        "title": str(signature.title),
        "explanation": str(signature.explanation),
        "evidence": record.get("evidence", []),
        "node": record.get("node", ""),
        "last_frame": record.get("last_frame", ""),
        "error": record.get("error", ""),
        "fixes": [
            {"action": f, "label": str(Fix.LABELS[f])}
            for f in signature.fixes
            if f != Fix.EDIT and (offered is None or f in offered)
        ],
    }
