"""Checks before sbatch, over the member's own SFTP: what the run will read exists and the member can
read it. A failed check keeps the job off Slurm: it ends with the exact path and reason before any GPU
waits (the worker's submit step), and the form's preview shows the same problems first.

What is checked (each path as its own user sees it):
- run.yaml's absolute paths: the model and tokenizer directories, every training/eval data file, the
  question and reference files of an evaluation, the checkpoint to resume from;
- the cluster preamble's environment: paths after `source`/`.`/`conda activate` and absolute
  interpreters it names (a wrong conda path is the classic "command not found" an hour later).
The output directory is inside the job's run directory, which the portal creates for the member just
before sbatch: it is writable by construction, so it is not probed separately. What is checked there is
room: the free space of the filesystem that will hold it (`df`, as the member) and, where the cluster
reports one (`quota`), what is left of the member's block quota on that filesystem; less than
PREFLIGHT_MIN_FREE_GB of either refuses the job ("Disk quota exceeded" an hour into a run, at the first
checkpoint, is the costly way to learn it).
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
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
    """Every path the job reads that its member's connection cannot read, in order, then the lack of
    room where it writes."""
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
    room = space_problem(job, conn)
    if room is not None:
        problems.append(room)
    return problems


@dataclass(frozen=True)
class Room:
    """What `df` and `quota` said about the filesystem holding `path` (bytes; quota None: none set)."""

    path: str
    free: int
    quota_used: int | None = None
    quota_limit: int | None = None

    @property
    def available(self) -> int:
        if self.quota_limit is None or self.quota_used is None:
            return self.free
        return max(0, min(self.free, self.quota_limit - self.quota_used))


def space_command(run_dir: str) -> str:
    """One command line, run as the member: `df` of the run directory's nearest existing ancestor (df
    skips the missing ones, answering in argument order), then the member's quotas if `quota` exists."""
    ancestors: list[str] = []
    path = posixpath.normpath(run_dir)
    while path not in ("/", "") and len(ancestors) < 16:
        ancestors.append(path)
        path = posixpath.dirname(path)
    df = ssh.quote_command(["df", "-Pk", "--", *ancestors, "/"])
    return f"{df} 2>/dev/null; echo ---; command -v quota >/dev/null 2>&1 && quota -w 2>/dev/null; true"


def parse_space(output: str) -> Room | None:
    """`df -Pk` (first filesystem line) and linuxquota's `quota -w` (the line of that filesystem, by
    device or mount point; `*` marks a count over its soft limit) → Room; None when df said nothing."""
    all_lines = output.splitlines()
    cut = all_lines.index("---") if "---" in all_lines else len(all_lines)
    lines = [line.split() for line in all_lines[1:cut] if line.strip()]
    if not lines or len(lines[0]) < 6 or not lines[0][3].isdigit():
        return None
    device, free_kib, mount = lines[0][0], int(lines[0][3]), " ".join(lines[0][5:])
    room = Room(path=mount, free=free_kib * 1024)
    for line in all_lines[cut + 1 :]:
        fields = line.split()
        if len(fields) < 4 or fields[0] not in (device, mount):
            continue
        try:
            used, soft, hard = (int(f.rstrip("*")) for f in fields[1:4])
        except ValueError:
            continue
        limits = [limit for limit in (soft, hard) if limit > 0]
        if limits:
            return Room(room.path, room.free, used * 1024, min(limits) * 1024)
    return room


def space_problem(job: Job, conn: ssh.Connection) -> Problem | None:
    """Less room than PREFLIGHT_MIN_FREE_GB where the run will write: a Problem naming the filesystem
    and what is left. Nothing is refused when the cluster does not say (no df output)."""
    need = int(settings.PREFLIGHT_MIN_FREE_GB * 10**9)
    if need <= 0:
        return None
    result = conn.run_shell(space_command(job.run_dir), timeout=30)
    room = parse_space(result.stdout)
    if room is None or room.available >= need:
        return None
    numbers = {"free": _gb(room.available), "need": _gb(need)}
    if room.quota_limit is not None and room.available < room.free:
        numbers |= {"used": _gb(room.quota_used or 0), "limit": _gb(room.quota_limit)}
        reason = (
            _(
                "has %(free)s GB left under your quota (%(used)s of %(limit)s GB used); the run needs at least %(need)s GB"
            )
            % numbers
        )
    else:
        reason = _("has only %(free)s GB free; the run needs at least %(need)s GB") % numbers
    return Problem("disk", room.path, reason)


def _gb(size: int) -> str:
    return f"{size / 10**9:.1f}"


def _translate(reason: str) -> str:
    return {
        "does not exist": _("does not exist"),
        "is not a directory": _("is not a directory"),
        "is a directory, not a file": _("is a directory, not a file"),
        "cannot be read (permission denied)": _("cannot be read (permission denied)"),
    }.get(reason, reason)
