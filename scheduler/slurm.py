"""Slurm's command lines and the parsers of their output: pure functions, tested on recorded output.

Every Slurm command the portal runs is built here, as an argv list (`scheduler.ssh` quotes and runs it):
sbatch, squeue, sacct, scancel, the inventory (scontrol show node/partition) and reservations (scontrol
create/update/delete/show reservation). Every command asks for explicit fields (`--format`,
`--parsable2`, `--oneliner`) so a site's default formats never change what we read. Host lists
(`node[1-4,7]`) are read and written by python-hostlist. Nothing here does I/O.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

import hostlist

# Portal job states (scheduler.models.Job.State values).
PENDING, RUNNING, COMPLETED, FAILED = "pending", "running", "completed", "failed"
CANCELLED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, PREEMPTED = (
    "cancelled",
    "timeout",
    "out_of_memory",
    "node_fail",
    "preempted",
)

_STATE_MAP = {
    "PENDING": PENDING,
    "REQUEUED": PENDING,
    "REQUEUE_HOLD": PENDING,
    "REQUEUE_FED": PENDING,
    "RESV_DEL_HOLD": PENDING,
    "SUSPENDED": PENDING,
    "CONFIGURING": RUNNING,
    "RUNNING": RUNNING,
    "COMPLETING": RUNNING,
    "STAGE_OUT": RUNNING,
    "SIGNALING": RUNNING,
    "RESIZING": RUNNING,
    "STOPPED": RUNNING,
    "COMPLETED": COMPLETED,
    "FAILED": FAILED,
    "BOOT_FAIL": FAILED,
    "DEADLINE": FAILED,
    "SPECIAL_EXIT": FAILED,
    "REVOKED": FAILED,
    "CANCELLED": CANCELLED,
    "TIMEOUT": TIMEOUT,
    "OUT_OF_MEMORY": OUT_OF_MEMORY,
    "NODE_FAIL": NODE_FAIL,
    "PREEMPTED": PREEMPTED,
}
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, PREEMPTED})
# When steps disagree with the allocation line, the worst wins (a failed batch step is not "completed").
_SEVERITY = [COMPLETED, CANCELLED, TIMEOUT, PREEMPTED, FAILED, NODE_FAIL, OUT_OF_MEMORY]


@functools.lru_cache(maxsize=256)  # a handful of distinct states, asked for by every job every cycle
def portal_state(slurm_state: str) -> str:
    """Map a Slurm state (`CANCELLED by 1001`, `RUNNING`, `OUT_OF_MEMORY`…) to a portal state."""
    word = slurm_state.strip().split(" ", 1)[0].rstrip("+").upper()
    return _STATE_MAP.get(word, PENDING if not word else FAILED)


# --- squeue -------------------------------------------------------------------------------------------

# QueueEntry's fields, in order. The comment comes last: it may contain '|'.
SQUEUE_FORMAT = "%i|%T|%r|%N|%S|%V|%j|%k"


def squeue_command(users: str | Iterable[str]) -> list[str]:
    """Every job of these cluster users (the portal's members and its service account), one command."""
    names = [users] if isinstance(users, str) else sorted(set(users))
    return [
        *TIME_ENV,
        "squeue",
        "--noheader",
        "--array",
        "--user",
        ",".join(names),
        "--format",
        SQUEUE_FORMAT,
    ]


class QueueEntry(NamedTuple):
    """One job in squeue's answer, in `SQUEUE_FORMAT`'s order. Every tracked job has one every cycle,
    so it is a plain tuple of squeue's words, and the times are read only when asked for (`start`,
    `submit`): most cycles compare a job's state, reason and nodes, find nothing new, and move on. A
    new field goes before `comment` in both, which stays last."""

    job_id: str
    slurm_state: str
    reason: str  # why it waits ("Priority", "Resources"…); "" for squeue's `None`
    nodes: str
    start_text: str  # the start, or for a pending job when Slurm expects it to start
    submit_text: str
    name: str
    comment: str

    @property
    def state(self) -> str:
        return portal_state(self.slurm_state)

    @property
    def start(self) -> dt.datetime | None:
        return parse_time(self.start_text)

    @property
    def submit(self) -> dt.datetime | None:
        return parse_time(self.submit_text)


# Times as epoch seconds: no guessing which time zone the login node's sessions print in.
TIME_ENV = ["env", "SLURM_TIME_FORMAT=%s"]


def parse_time(value: str) -> dt.datetime | None:
    """Epoch seconds (with SLURM_TIME_FORMAT=%s) as an aware UTC datetime, or Slurm's local
    `YYYY-MM-DDTHH:MM:SS` as a naive one; None for `Unknown`, `None`, `N/A`, empty."""
    value = value.strip()
    if value.isdigit():
        return dt.datetime.fromtimestamp(int(value), tz=dt.UTC)
    if not value[:1].isdigit():
        return None  # a placeholder: not worth strptime's exception
    try:
        return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None


_PLACEHOLDERS = frozenset(("(null)", "None", "None assigned", "N/A", "n/a", "(None)"))


def _none_if_placeholder(value: str) -> str:
    value = value.strip()
    return "" if value in _PLACEHOLDERS else value


def parse_squeue(text: str) -> list[QueueEntry]:
    """squeue's lines in `SQUEUE_FORMAT`: one split each, the times left as text (`QueueEntry`)."""
    entries = []
    fields = len(QueueEntry._fields)
    for line in text.splitlines():
        parts = line.split("|", fields - 1)
        if len(parts) != fields:
            if not line.strip():
                continue
            raise ValueError(f"unexpected squeue line: {line!r}")
        job_id, state, reason, nodes, start, submit, name, comment = parts
        entries.append(
            QueueEntry(
                job_id.strip(),
                state.strip(),
                _none_if_placeholder(reason),
                _none_if_placeholder(nodes),
                start.strip(),
                submit.strip(),
                name.strip(),
                _none_if_placeholder(comment),
            )
        )
    return entries


# --- sacct --------------------------------------------------------------------------------------------

SACCT_FIELDS = (
    "JobID",
    "State",
    "ExitCode",
    "Submit",
    "Start",
    "End",
    "ElapsedRaw",
    "NodeList",
    "AllocTRES",
    "JobName",
    "Comment",
)


def sacct_command(job_ids: Iterable[str]) -> list[str]:
    ids = ",".join(sorted(set(job_ids), key=lambda j: (len(j), j)))
    return [
        *TIME_ENV,
        "sacct",
        "--noheader",
        "--parsable2",
        "--allusers",  # members' jobs, read by the service account
        "--duplicates",
        "--jobs",
        ids,
        "--format",
        ",".join(SACCT_FIELDS),
    ]


def sacct_by_name_command(names: Iterable[str], since: str = "now-7days") -> list[str]:
    """Find jobs by their name (the portal UUID), e.g. after a crash between sbatch and commit."""
    return [
        *TIME_ENV,
        "sacct",
        "--noheader",
        "--parsable2",
        "--allusers",
        "--allocations",
        "--starttime",
        since,
        "--name",
        ",".join(sorted(set(names))),
        "--format",
        ",".join(SACCT_FIELDS),
    ]


@dataclass
class AccountingRecord:
    job_id: str
    slurm_state: str = ""
    state: str = PENDING
    exit_code: int | None = None
    signal: int | None = None
    submit: dt.datetime | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    elapsed_seconds: int = 0
    nodes: str = ""
    gpus: int = 0
    name: str = ""
    comment: str = ""
    cancelled_by_uid: int | None = None
    steps: dict[str, str] = field(default_factory=dict)  # step name -> portal state

    @property
    def gpu_hours(self) -> float:
        return round(self.gpus * self.elapsed_seconds / 3600, 4)


def parse_exit_code(value: str) -> tuple[int | None, int | None]:
    """`3:0` -> (3, 0); `0:9` -> (0, 9)."""
    match = re.fullmatch(r"\s*(\d+):(\d+)\s*", value)
    if not match:
        return None, None
    return int(match.group(1)), int(match.group(2))


def parse_tres(value: str) -> dict[str, str]:
    """`billing=1,cpu=1,gres/gpu:h100=2,gres/gpu=2,mem=2000M,node=1` -> mapping."""
    items = {}
    for part in value.split(","):
        if "=" in part:
            key, _, val = part.partition("=")
            items[key.strip()] = val.strip()
    return items


def parse_sacct(text: str) -> dict[str, AccountingRecord]:
    """One record per job, with its steps folded in: the allocation line gives times and resources;
    a failed, OOM-killed or cancelled step makes the job's state say so even when the allocation
    line reads COMPLETED."""
    records: dict[str, AccountingRecord] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("|", len(SACCT_FIELDS) - 1)
        if len(parts) != len(SACCT_FIELDS):
            raise ValueError(f"unexpected sacct line: {line!r}")
        row = dict(zip(SACCT_FIELDS, parts, strict=True))
        job_id, _, step = row["JobID"].partition(".")
        record = records.setdefault(job_id, AccountingRecord(job_id=job_id))
        state = portal_state(row["State"])
        code, signal = parse_exit_code(row["ExitCode"])
        if step:
            record.steps[step] = state
            if step == "batch":
                # The batch script's own exit status is the job's exit code; none when it never
                # reported one (a node failure leaves the batch step's ExitCode blank).
                record.exit_code, record.signal = code, signal
            continue
        record.slurm_state = row["State"].strip()
        record.state = state
        if record.exit_code is None:
            record.exit_code, record.signal = code, signal
        record.submit = parse_time(row["Submit"])
        record.nodes = _none_if_placeholder(row["NodeList"])
        # A job cancelled before it got nodes (e.g. its dependency failed) reads Start == End with
        # NodeList `None assigned`: it never started.
        record.start = parse_time(row["Start"]) if record.nodes else None
        record.end = parse_time(row["End"])
        record.elapsed_seconds = int(row["ElapsedRaw"] or 0) if row["ElapsedRaw"].strip().isdigit() else 0
        tres = parse_tres(row["AllocTRES"])
        record.gpus = int(tres.get("gres/gpu", "0") or 0) if tres.get("gres/gpu", "0").isdigit() else 0
        record.name = row["JobName"].strip()
        record.comment = _none_if_placeholder(row["Comment"])
        cancelled = re.search(r"CANCELLED by (\d+)", row["State"])
        record.cancelled_by_uid = int(cancelled.group(1)) if cancelled else None
    for record in records.values():
        # Steps only refine an allocation that says COMPLETED or FAILED. CANCELLED, TIMEOUT, NODE_FAIL,
        # PREEMPTED, OUT_OF_MEMORY name the cause even when the script, on being signalled, exited
        # non-zero and its batch step reads FAILED.
        if record.state in (COMPLETED, FAILED):
            worst = max(
                [record.state, *[s for s in record.steps.values() if s in TERMINAL]], key=_SEVERITY.index
            )
            if record.state == COMPLETED and worst == CANCELLED:
                worst = FAILED  # a step killed inside a "completed" job: the job did not succeed
            record.state = worst
            if record.state == COMPLETED and record.exit_code not in (None, 0):
                record.state = FAILED
    return records


# --- sbatch, scancel -----------------------------------------------------------------------------------

# One `--name` or `--name=value` option of a validated word (an #SBATCH line carries exactly one).
# \Z, not $: `$` also matches before a trailing newline, which would let "--x=y\n" through.
SBATCH_OPTION_RE = re.compile(r"^--[a-z][a-z-]{0,40}(=[A-Za-z0-9][A-Za-z0-9._:,@-]{0,200})?\Z")


def sbatch_command(after_ok: str | None = None) -> list[str]:
    """Submit the script on stdin; with `after_ok`, once that Slurm job has completed successfully."""
    return ["sbatch", "--parsable", *([f"--dependency=afterok:{after_ok}"] if after_ok else [])]


def parse_sbatch(text: str) -> str:
    """`sbatch --parsable` prints `12345` or `12345;cluster`."""
    first = text.strip().splitlines()[-1] if text.strip() else ""
    job_id = first.split(";", 1)[0].strip()
    if not job_id.isdigit():
        raise ValueError(f"sbatch did not print a job id: {text.strip()[:200]!r}")
    return job_id


def scancel_command(job_ids: Iterable[str]) -> list[str]:
    return ["scancel", *sorted(set(job_ids), key=lambda j: (len(j), j))]


# --- inventory (scontrol) ------------------------------------------------------------------------------

INVENTORY_MARK = "@@tanuki-partitions@@"


def inventory_commands() -> tuple[list[str], list[str], list[str]]:
    """Nodes and partitions in one round trip (`chain_commands(*inventory_commands())`)."""
    return (
        ["scontrol", "--oneliner", "show", "node"],
        ["echo", INVENTORY_MARK],
        ["scontrol", "--oneliner", "show", "partition"],
    )


_KEY = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_/:.]*)=")


def parse_oneliner(line: str) -> dict[str, str]:
    """`NodeName=node1 Arch=x86_64 … Reason=Not responding [slurm@…]` -> mapping (values may hold spaces)."""
    matches = list(_KEY.finditer(line))
    fields = {}
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(line)
        fields[match.group(1)] = line[match.end() : end].strip()
    return fields


@dataclass(frozen=True)
class NodeInfo:
    name: str
    state: str
    reason: str
    partitions: tuple[str, ...]
    gpus_total: int
    gpus_alloc: int
    cpus_total: int
    cpus_alloc: int
    memory_mb: int

    @property
    def unavailable(self) -> bool:
        """Drained, draining, down or failing: jobs will not start here."""
        words = set(self.state.replace("+", " ").split())
        return bool(
            words & {"DRAIN", "DRAINED", "DRAINING", "DOWN", "DOWN*", "FAIL", "FAILING", "NOT_RESPONDING"}
        ) or self.state.endswith("*")


@dataclass(frozen=True)
class PartitionInfo:
    name: str
    state: str
    is_default: bool
    max_time_minutes: int | None  # None = unlimited
    default_time_minutes: int | None
    nodes: str
    total_nodes: int


def parse_duration_minutes(value: str) -> int | None:
    """Slurm durations (`7-00:00:00`, `01:00:00`, `30`, `UNLIMITED`) in minutes; None when unlimited."""
    value = value.strip()
    if not value or value.upper() in ("UNLIMITED", "INFINITE", "NONE"):
        return None
    days = 0
    if "-" in value:
        day_part, value = value.split("-", 1)
        days = int(day_part)
    pieces = [int(p) for p in value.split(":")]
    if len(pieces) == 3:
        hours, minutes, seconds = pieces
    elif len(pieces) == 2:
        hours, minutes, seconds = (0, *pieces) if days == 0 else (pieces[0], pieces[1], 0)
    else:
        hours, minutes, seconds = (pieces[0], 0, 0) if days else (0, pieces[0], 0)
    return days * 1440 + hours * 60 + minutes + (1 if seconds else 0)


def _gpu_count(tres: str) -> int:
    value = parse_tres(tres).get("gres/gpu", "0")
    return int(value) if value.isdigit() else 0


def parse_inventory(text: str) -> tuple[list[NodeInfo], list[PartitionInfo]]:
    node_text, _, partition_text = text.partition(INVENTORY_MARK)
    nodes = []
    for line in node_text.splitlines():
        if not line.startswith("NodeName="):
            continue
        f = parse_oneliner(line)
        alloc_tres = parse_tres(f.get("AllocTRES", ""))
        nodes.append(
            NodeInfo(
                name=f["NodeName"],
                state=f.get("State", "UNKNOWN"),
                reason=_none_if_placeholder(f.get("Reason", "")),
                partitions=tuple(p for p in f.get("Partitions", "").split(",") if p),
                gpus_total=_gpu_count(f.get("CfgTRES", "")),
                gpus_alloc=_gpu_count(f.get("AllocTRES", "")),
                cpus_total=int(f.get("CPUTot", "0") or 0),
                cpus_alloc=int(alloc_tres.get("cpu", f.get("CPUAlloc", "0")) or 0),
                memory_mb=int(f.get("RealMemory", "0") or 0),
            )
        )
    partitions = []
    for line in partition_text.splitlines():
        if not line.startswith("PartitionName="):
            continue
        f = parse_oneliner(line)
        partitions.append(
            PartitionInfo(
                name=f["PartitionName"],
                state=f.get("State", "UP"),
                is_default=f.get("Default", "NO").upper() == "YES",
                max_time_minutes=parse_duration_minutes(f.get("MaxTime", "UNLIMITED")),
                default_time_minutes=parse_duration_minutes(f.get("DefaultTime", "NONE")),
                nodes=f.get("Nodes", ""),
                total_nodes=int(f.get("TotalNodes", "0") or 0),
            )
        )
    return nodes, partitions


# --- host lists ---------------------------------------------------------------------------------------


def expand_hostlist(text: str) -> list[str]:
    """`node[1-2,4],gpu07` -> ['node1', 'node2', 'node4', 'gpu07']; '' -> [].
    A ValueError that names the text when it is not a host list (unbalanced brackets, a bad range)."""
    try:
        names = hostlist.expand_hostlist(text.strip())
    except hostlist.BadHostlist as error:
        raise ValueError(f"not a Slurm host list: {text.strip()[:200]!r} ({error})") from error
    return [str(name) for name in names]


def collect_hostlist(names: Iterable[str]) -> str:
    """['node1', 'node2', 'node4'] -> `node[1-2,4]` (the inverse of expand_hostlist)."""
    return str(hostlist.collect_hostlist([name.strip() for name in names if name.strip()]))


# --- reservations (scontrol) ----------------------------------------------------------------------------

RESERVATION_TIME = "%Y-%m-%dT%H:%M:%S"  # scontrol reads times without a zone as the cluster's local time


@dataclass(frozen=True)
class ReservationSpec:
    """What a reservation should be. Whole nodes: named `nodes`, else `node_count` of the partition.
    `start` None (updates only): leave the start as it is."""

    name: str
    end: dt.datetime
    tz: dt.tzinfo  # the cluster's time zone, in which scontrol reads the times
    start: dt.datetime | None = None
    partition: str = ""
    nodes: tuple[str, ...] = ()
    node_count: int = 0
    accounts: tuple[str, ...] = ()
    users: tuple[str, ...] = ()


def reservation_time(value: dt.datetime, tz: dt.tzinfo) -> str:
    return value.astimezone(tz).strftime(RESERVATION_TIME)


def reservation_fields(spec: ReservationSpec) -> list[str]:
    """`key=value` words for scontrol create/update, each one argument."""
    fields = []
    if spec.start is not None:
        fields.append(f"starttime={reservation_time(spec.start, spec.tz)}")
    fields.append(f"endtime={reservation_time(spec.end, spec.tz)}")
    if spec.partition:
        fields.append(f"partition={spec.partition}")
    fields.append(f"nodes={','.join(spec.nodes)}" if spec.nodes else f"nodecnt={spec.node_count}")
    if spec.accounts:
        fields.append(f"accounts={','.join(spec.accounts)}")
    if spec.users:
        fields.append(f"users={','.join(spec.users)}")
    return fields


def show_reservation_command(name: str | None = None) -> list[str]:
    """One reservation (or all of them), one line each, times as epoch seconds."""
    return [*TIME_ENV, "scontrol", "--oneliner", "show", "reservation", *([name] if name else [])]


def create_reservation_commands(spec: ReservationSpec) -> tuple[list[str], list[str]]:
    """Create, then show it (`chain_commands(*…)`, one round trip) to learn which nodes Slurm picked."""
    return (
        ["scontrol", "create", "reservation", f"reservationname={spec.name}", *reservation_fields(spec)],
        show_reservation_command(spec.name),
    )


def update_reservation_commands(spec: ReservationSpec) -> tuple[list[str], list[str]]:
    """Update, then show it. The partition is not sent (it is the one the reservation was made in)."""
    fields = [f for f in reservation_fields(spec) if not f.startswith("partition=")]
    return (
        ["scontrol", "update", f"reservationname={spec.name}", *fields],
        show_reservation_command(spec.name),
    )


def delete_reservation_command(name: str) -> list[str]:
    return ["scontrol", "delete", f"reservationname={name}"]


_SHOW_MISSING = re.compile(r"Reservation (\S+) not found")
_DELETE_MISSING = re.compile(r"delete_reservation reservationname=(\S+): Requested reservation is invalid")
_UPDATE_MISSING = "Error updating the reservation: Requested reservation is invalid"


def reservation_missing(output: str, name: str = "") -> bool:
    """Whether scontrol's output says the reservation does not exist (it ended, or was deleted), in
    scontrol's own lines only: `Reservation x not found` (show), `delete_reservation
    reservationname=x: Requested reservation is invalid` (delete), `Error updating the reservation:
    Requested reservation is invalid` (update, which names none). With `name`, a show or delete line
    about another reservation does not count. Other "not found" lines (a node, a user, the shell's
    `command not found`) are not a missing reservation."""
    for line in output.splitlines():
        line = line.strip()
        if line == _UPDATE_MISSING:
            return True
        said = _SHOW_MISSING.fullmatch(line) or _DELETE_MISSING.fullmatch(line)
        if said and (not name or said[1] == name):
            return True
    return False


@dataclass(frozen=True)
class ReservationInfo:
    name: str
    start: dt.datetime | None
    end: dt.datetime | None
    nodes: str  # a host list, as Slurm prints it: `node[1-2]`
    node_count: int
    partition: str
    accounts: tuple[str, ...]
    users: tuple[str, ...]
    state: str  # ACTIVE or INACTIVE (not begun yet)
    flags: tuple[str, ...]

    @property
    def node_names(self) -> list[str]:
        return expand_hostlist(self.nodes)


def _words(value: str) -> tuple[str, ...]:
    return tuple(w for w in _none_if_placeholder(value).split(",") if w)


def parse_reservations(text: str) -> list[ReservationInfo]:
    """`scontrol --oneliner show reservation` output: one ReservationName= line per reservation. Other
    lines (`Reservation created: x`, `Reservation updated.`, `No reservations in the system`,
    `Reservation x not found`) name none."""
    found = []
    for line in text.splitlines():
        if not line.startswith("ReservationName="):
            continue
        f = parse_oneliner(line)
        count = f.get("NodeCnt", "0")
        found.append(
            ReservationInfo(
                name=f["ReservationName"],
                start=parse_time(f.get("StartTime", "")),
                end=parse_time(f.get("EndTime", "")),
                nodes=_none_if_placeholder(f.get("Nodes", "")),
                node_count=int(count) if count.isdigit() else 0,
                partition=_none_if_placeholder(f.get("PartitionName", "")),
                accounts=_words(f.get("Accounts", "")),
                users=_words(f.get("Users", "")),
                state=f.get("State", ""),
                flags=_words(f.get("Flags", "")),
            )
        )
    return found


def reserved_nodes(text: str, name: str) -> str:
    """The host list the named reservation holds, from `show reservation` output ('' if not shown)."""
    return next((r.nodes for r in parse_reservations(text) if r.name == name), "")


# --- associations (sacctmgr) -------------------------------------------------------------------------


def add_association_command(user: str, account: str) -> list[str]:
    """Let `user` run jobs under `account` (creates the Slurm user when it is new). Idempotent."""
    return ["sacctmgr", "--immediate", "add", "user", f"name={user}", f"account={account}"]


def remove_association_command(user: str, account: str) -> list[str]:
    return ["sacctmgr", "--immediate", "delete", "user", f"name={user}", f"account={account}"]


def show_associations_command() -> list[str]:
    return ["sacctmgr", "--noheader", "--parsable2", "show", "associations", "format=user,account"]


def parse_associations(text: str) -> set[tuple[str, str]]:
    """(user, account) of each user association (account-only lines have no user and are skipped)."""
    found = set()
    for line in text.splitlines():
        user, _, account = line.strip().partition("|")
        if user and account:
            found.add((user, account.split("|", 1)[0]))
    return found


def association_unchanged(output: str) -> bool:
    """sacctmgr's words for "already so": nothing to add, nothing to delete."""
    text = output.lower()
    return "nothing new added" in text or "already exists" in text or "nothing deleted" in text


# --- reservations Slurm refused (lending's sync converges on them) -------------------------------------
# Added at the end of the file for lending.sync: a refused `scontrol update reservation` is followed by
# a delete and a create under a new name (Slurm 22.05's update keeps the nodes it holds, so a move onto
# a time when another reservation holds them is refused although other nodes are free; and a
# reservation with jobs in it cannot be deleted, so the new one cannot take its name).

# scontrol's prefixes for a refusal, and the command each belongs to. `slurm_update error: …` repeats the
# `Error updating …` line and is skipped; create adds two `Note, …`/`If no partition …` lines (skipped).
_REFUSAL_PREFIXES = (
    ("Error creating the reservation: ", "create"),
    ("Error updating the reservation: ", "update"),
    ("delete_reservation ", "delete"),  # `delete_reservation reservationname=x: why`
    ("slurm_load_reservations error: ", "show"),
)
# Slurm's words -> a kind (first match wins: "Requested reservation is invalid" before anything else).
_REFUSAL_KINDS = (
    ("requested reservation is invalid", "missing"),  # `Reservation x not found` (show) is read whole
    ("overlaps with another reservation", "overlap"),
    ("nodes are busy", "busy"),
    ("is in use", "in_use"),
    ("duplicate reservation name", "duplicate"),
    ("unable to contact slurm controller", "unreachable"),
    ("invalid account", "invalid_account"),
)


@dataclass(frozen=True)
class ReservationRefusal:
    """One thing scontrol refused: the command (create, update, delete, show), a kind (overlap, busy,
    in_use, missing, duplicate, unreachable, invalid_account, other) and Slurm's own words."""

    command: str
    kind: str
    message: str

    def __str__(self) -> str:
        return f"{self.command}: {self.message}" if self.command else self.message


def refusal_kind(message: str) -> str:
    text = message.lower()
    return next((kind for words, kind in _REFUSAL_KINDS if words in text), "other")


def parse_reservation_refusals(text: str) -> list[ReservationRefusal]:
    """The refusals in scontrol's output (stdout and stderr together), in order. Output that names none
    of scontrol's prefixes (a shell error, say) gives one refusal of kind "other" with its last line."""
    found = []
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if _SHOW_MISSING.fullmatch(line):
            found.append(ReservationRefusal("show", "missing", line))
            continue
        for prefix, command in _REFUSAL_PREFIXES:
            if line.startswith(prefix):
                message = line[len(prefix) :]
                if command == "delete":
                    message = message.partition(": ")[2] or message
                found.append(ReservationRefusal(command, refusal_kind(message), message))
                break
    if not found and lines and not any(line.startswith("ReservationName=") for line in lines):
        found.append(ReservationRefusal("", refusal_kind(lines[-1]), lines[-1][:500]))
    return found


def recreate_reservation_commands(spec: ReservationSpec) -> tuple[list[str], list[str], list[str]]:
    """Delete, create anew (`node_count`: Slurm picks free nodes; or the named `nodes`), show. Run them
    with `;`, not `&&`: each runs whatever the one before did (deleting a reservation that is gone
    fails harmlessly; a delete refused while jobs use it leaves the old one, and create then fails on
    its name), and the final show says what came of it."""
    create, show = create_reservation_commands(spec)
    return delete_reservation_command(spec.name), create, show


def replace_reservation_commands(
    old_name: str, spec: ReservationSpec
) -> tuple[list[str], list[str], list[str], list[str]]:
    """Delete the reservation `old_name`, create `spec` under its own new name, show the new one, show
    the old one. Run them with `;`: a delete refused because jobs are in the old reservation ("in use")
    leaves it as it is, the create goes on under the new name (on other nodes, or on the named ones),
    and the two shows say what came of each."""
    create, show = create_reservation_commands(spec)
    return delete_reservation_command(old_name), create, show, show_reservation_command(old_name)


# --- sbatch --test-only: when would it start? -----------------------------------------------------------

TEST_ONLY_RE = re.compile(
    r"Job (?P<id>\d+) to start at (?P<start>\S+)"
    r"(?: using (?P<cpus>\d+) processors)?(?: on nodes? (?P<nodes>\S+))?(?: in partition (?P<partition>\S+))?"
)


def test_only_command() -> list[str]:
    """`sbatch --test-only` of the script on stdin: Slurm's start estimate, nothing queued."""
    return [*TIME_ENV, "sbatch", "--test-only"]


@dataclass(frozen=True)
class WillRun:
    start: dt.datetime | None  # aware when Slurm printed epoch seconds; naive local time otherwise
    nodes: str
    partition: str


def parse_test_only(output: str) -> WillRun | None:
    """`sbatch: Job 1234 to start at 2026-12-07T10:00:00 using 8 processors on nodes node1 in partition
    gpu` (or epoch seconds under SLURM_TIME_FORMAT=%s); None when the output has no such line."""
    match = TEST_ONLY_RE.search(output)
    if match is None:
        return None
    return WillRun(
        start=parse_time(match["start"]), nodes=match["nodes"] or "", partition=match["partition"] or ""
    )
