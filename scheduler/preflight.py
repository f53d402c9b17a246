"""Checks before sbatch, over the member's own SFTP: what the run will read exists and the member can
read it. A failed check keeps the job off Slurm: it ends with the exact path and reason before any GPU
waits (the worker's submit step), and the form's preview shows the same problems first.

What is checked (each path as its own user sees it):
- run.yaml's absolute paths: the model and tokenizer directories, every training/eval data file, the
  question and reference files of an evaluation, the checkpoint to resume from;
- the cluster preamble's environment: paths after `source`/`.`/`conda activate` and absolute
  interpreters it names (a wrong conda path is the classic "command not found" an hour later).
The output directory is inside the job's run directory, which the portal creates for the member just
before sbatch: it is writable by construction, so it is not probed separately.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext as _

from scheduler import ssh
from scheduler.models import Job

# run.yaml key → what it must be (True: a directory, False: a file, None: either)
CONFIG_PATHS: dict[str, bool | None] = {
    "model.name_or_path": True,
    "tokenizer.name_or_path": True,
    "data.train_files": False,
    "data.eval_files": False,
    "evaluate.questions": False,
    "evaluate.reference_answers": None,
    "evaluate.judge.prompts_file": False,
    "checkpoint.resume": True,
}
MAX_PATHS = 64  # at most this many paths are probed per job (each is one or two SFTP round trips)
_PREAMBLE_RE = re.compile(
    r"^\s*(?:source|\.|conda\s+activate|micromamba\s+activate|mamba\s+activate)\s+(\S+)"
)


@dataclass(frozen=True)
class Problem:
    key: str  # the run.yaml key, or "preamble"
    path: str
    reason: str

    def __str__(self) -> str:
        return _("%(key)s: %(path)s %(reason)s") % {"key": self.key, "path": self.path, "reason": self.reason}


def paths_of(job: Job) -> Iterator[tuple[str, str, bool | None]]:
    """(key, absolute path, directory?) of everything the job will read."""
    config: dict[str, Any] = (job.parameters or {}).get("config") or {}
    for key, directory in CONFIG_PATHS.items():
        value: Any = config
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        values = value if isinstance(value, list) else [value]
        for index, item in enumerate(values):
            if isinstance(item, str) and item.startswith("/"):
                yield (f"{key}[{index}]" if isinstance(value, list) else key), item, directory
    for line in (job.cluster.env_preamble or "").splitlines():
        match = _PREAMBLE_RE.match(line)
        if match:
            try:
                target = shlex.split(match[1])[0]
            except ValueError:
                continue
            if target.startswith("/"):
                yield "preamble", target, None


def check(job: Job, conn: ssh.Connection) -> list[Problem]:
    """Every path the job reads that its member's connection cannot read, in order."""
    problems = []
    seen: set[str] = set()
    for key, path, directory in paths_of(job):
        if path in seen:
            continue
        seen.add(path)
        if len(seen) > MAX_PATHS:
            break
        if job.depends_on_id and key == "model.name_or_path":
            continue  # a chained step reads the model the step before writes: not there yet
        reason = conn.access_problem(path, directory)
        if reason is not None:
            problems.append(Problem(key, path, _translate(reason)))
    return problems


def _translate(reason: str) -> str:
    return {
        "does not exist": _("does not exist"),
        "is not a directory": _("is not a directory"),
        "is a directory, not a file": _("is a directory, not a file"),
        "cannot be read (permission denied)": _("cannot be read (permission denied)"),
    }.get(reason, reason)
