"""Data sets as records: registered by a member, checked on the cluster as that member, picked by forms.

1. `register` refuses what is wrong before anything is recorded: a bad name or version, a path that is
   not absolute, a path the member cannot read on the cluster (asked over SFTP at once, as them), the
   same name and version at another path. Registering an existing version again asks for its hash again.
2. `check_datasets` (a step of the worker's cycle) starts the count and the hash on the cluster as the
   registrant, detached (`nohup sh -c …`, so a 100 GB file does not hold the cycle), and reads the result
   file on a later visit: rows (lines of .jsonl files), bytes, files and the SHA-256 of the file or of a
   directory's manifest (each file's SHA-256 and relative path, sorted bytewise). A re-check whose hash
   differs changes nothing recorded: the version is marked changed, with both hashes in words.
3. `resolve` and `choices` are the scheduler's hooks (settings.TRAINING_DATASETS and
   TRAINING_DATASET_CHOICES): a training request names data sets as `name@version`; they become paths in
   run.yaml and the job records which versions (and hashes) it read.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from experiments.models import Dataset
from portal.models import Member, Subteam
from scheduler import identity, inputs, ssh
from scheduler.models import Cluster
from scheduler.training_jobs import DATA_SUFFIXES

if TYPE_CHECKING:
    from scheduler.steps import Poll

log = logging.getLogger("experiments")

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}\Z")
REF_RE = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,99})@(?P<version>[A-Za-z0-9][A-Za-z0-9._-]{0,39})\Z"
)
MAX_NOTES = 4000
CHECK_TIMEOUT = dt.timedelta(hours=12)  # a check still without its result file by then has failed
RESULT_BYTES = 4096
MAX_CHECKS_PER_VISIT = 20

# Computes what a data set holds; $1 the path, $2 the result file (written whole, then renamed into place,
# so a half-written result is never read). Hidden files are left out of a directory's manifest.
CHECK_SCRIPT = r"""
set -u
P=$1; O=$2; T="$O.tmp"
{
if [ -d "$P" ]; then
  cd "$P" || { echo "error cannot enter the directory"; exit 0; }
  echo "kind dir"
  find . -type f ! -path '*/.*' -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum > "$T.manifest" \
    || { echo "error hashing failed"; rm -f "$T.manifest"; exit 0; }
  echo "files $(wc -l < "$T.manifest")"
  echo "sha256 $(sha256sum < "$T.manifest" | cut -d' ' -f1)"
  rm -f "$T.manifest"
  echo "size $(find . -type f ! -path '*/.*' -printf '%s\n' | awk '{s+=$1} END {print s+0}')"
  echo "jsonl $(find . -type f -name '*.jsonl' ! -path '*/.*' | wc -l)"
  echo "rows $(find . -type f -name '*.jsonl' ! -path '*/.*' -print0 | xargs -0 -r cat | wc -l)"
elif [ -f "$P" ]; then
  echo "kind file"
  H=$(sha256sum < "$P") || { echo "error cannot read the file"; exit 0; }
  echo "sha256 ${H%% *}"
  echo "size $(stat -c %s "$P")"
  echo "files 1"
  case "$P" in *.jsonl) echo "jsonl 1"; echo "rows $(wc -l < "$P")";; *) echo "jsonl 0";; esac
else
  echo "missing"
fi
echo "end"
} > "$T" 2>&1
mv "$T" "$O"
"""


# --- registering ----------------------------------------------------------------------------------------


@dataclass
class Registration:
    subteam: Subteam
    cluster: Cluster
    name: str
    version: str
    path: str
    notes: str = ""
    derived_from: Dataset | None = None


def _errors(reg: Registration) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if not NAME_RE.match(reg.name or ""):
        errors["name"] = [
            _("1-100 letters, digits, dots, dashes or underscores, starting with a letter or digit.")
        ]
    if not VERSION_RE.match(reg.version or ""):
        errors["version"] = [_("1-40 letters, digits, dots, dashes or underscores (e.g. v3 or 2026-12-01).")]
    if (problem := inputs.path_problem(reg.path, absolute=True)) is not None:
        errors["path"] = [problem]
    elif len(reg.path) > 1000:
        errors["path"] = [_("At most 1000 characters.")]
    if (problem := inputs.text_problem(reg.notes, max_length=MAX_NOTES, multiline=True)) is not None:
        errors["notes"] = [problem]
    if not reg.cluster.is_active:
        errors["cluster"] = [_("This cluster is not active.")]
    return errors


def _cluster_user(actor: Member, cluster: Cluster) -> str:
    try:
        return identity.cluster_user_for(actor, cluster)
    except identity.AccountError as error:
        raise ValidationError({"cluster": [str(error)]}) from error


def look_on_cluster(cluster: Cluster, username: str, path: str, pool: ssh.Pool | None = None) -> bool:
    """Whether the path is a directory, asked as the member over SFTP; ValidationError when they cannot
    read it (it does not exist, permission denied) or the cluster cannot be reached."""
    try:
        conn = identity.connect_user(cluster, username, pool or ssh.pool)
        problem = conn.access_problem(path)
        if problem is None:
            return conn.access_problem(path, directory=True) is None
    except identity.AccountError as error:
        raise ValidationError({"cluster": [str(error)]}) from error
    except ssh.SlurmError as error:
        raise ValidationError(
            {"cluster": [_("The cluster did not answer: %(error)s") % {"error": inputs.short(str(error))}]}
        ) from error
    raise ValidationError(
        {
            "path": [
                _("%(path)s %(problem)s on %(cluster)s (as %(user)s).")
                % {"path": path, "problem": problem, "cluster": cluster.name, "user": username}
            ]
        }
    )


def register(actor: Member, reg: Registration, pool: ssh.Pool | None = None) -> tuple[Dataset, bool]:
    """(the data set, whether it is new). Nothing is recorded when a check fails. An existing version at
    the same path is checked again (its hash computed again and compared); at another path, refused."""
    reg.path = (reg.path or "").strip()
    reg.notes = (reg.notes or "").strip()
    errors = _errors(reg)
    existing = Dataset.objects.filter(name=reg.name, version=reg.version).first() if not errors else None
    if existing is not None:
        if existing.path != reg.path or existing.cluster_id != reg.cluster.pk:
            errors["version"] = [
                _("%(ref)s is registered at %(path)s on %(cluster)s: give this one a new version.")
                % {"ref": existing.ref, "path": existing.path, "cluster": existing.cluster.name}
            ]
        elif existing.subteam_id != reg.subteam.pk:
            errors["version"] = [
                _("%(ref)s is %(subteam)s's: only its members check it again.")
                % {"ref": existing.ref, "subteam": existing.subteam.name}
            ]
        elif existing.state == Dataset.State.CHECKING or existing.recheck:
            errors["version"] = [
                _("%(ref)s is being checked on the cluster already.") % {"ref": existing.ref}
            ]
    if reg.derived_from is not None and existing is not None and reg.derived_from.pk == existing.pk:
        errors["derived_from"] = [_("A data set cannot be derived from itself.")]
    if errors:
        raise ValidationError(errors)
    username = _cluster_user(actor, reg.cluster)
    is_directory = look_on_cluster(reg.cluster, username, reg.path, pool)
    with transaction.atomic():
        if existing is not None:
            Dataset.objects.filter(pk=existing.pk).update(
                recheck=True, check_user=username, check_started_at=None, check_message=""
            )
            existing.refresh_from_db()
            return existing, False
        dataset = Dataset.objects.create(
            name=reg.name,
            version=reg.version,
            subteam=reg.subteam,
            cluster=reg.cluster,
            path=reg.path,
            is_directory=is_directory,
            notes=reg.notes,
            derived_from=reg.derived_from,
            created_by=actor,
            check_user=username,
        )
    _wake()
    return dataset, True


def _wake() -> None:
    from scheduler import wakeups

    transaction.on_commit(wakeups.notify_workers)


# --- checking on the cluster ----------------------------------------------------------------------------


def result_path(cluster: Cluster, dataset: Dataset) -> str:
    """Where the check of this data set writes its answer (in the member's work directory)."""
    started = int(dataset.check_started_at.timestamp()) if dataset.check_started_at else 0
    return f"{cluster.work_dir_for(dataset.check_user)}/.datasets/{dataset.pk}-{started}.out"


def start_command(path: str, out: str) -> str:
    """One shell line: make the result's directory (0700), start the check detached and return at once."""
    directory = out.rsplit("/", 1)[0]
    return (
        f"{ssh.quote_command(['mkdir', '-p', '-m', '700', directory])} && "
        f"nohup {ssh.quote_command(['sh', '-c', CHECK_SCRIPT, 'sh', path, out])} > /dev/null 2>&1 &"
    )


@dataclass
class Found:
    missing: bool = False
    error: str = ""
    is_directory: bool = False
    sha256: str = ""
    size: int | None = None
    files: int | None = None
    rows: int | None = None


def parse_result(text: str) -> Found | None:
    """The result file's lines (`kind`, `sha256`, `size`, `files`, `jsonl`, `rows`, `end`); None while
    incomplete (no `end`)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if "end" not in lines and not any(line.startswith("error ") for line in lines):
        return None
    found = Found()
    numbers: dict[str, int] = {}
    jsonl = 0
    for line in lines:
        word, _sep, rest = line.partition(" ")
        if word == "missing":
            found.missing = True
        elif word == "error":
            found.error = inputs.short(rest or "error", 200)
        elif word == "kind":
            found.is_directory = rest == "dir"
        elif word == "sha256" and re.fullmatch(r"[0-9a-f]{64}", rest):
            found.sha256 = rest
        elif word in ("size", "files", "rows", "jsonl") and rest.isdigit():
            numbers[word] = int(rest)
    jsonl = numbers.get("jsonl", 0)
    found.size = numbers.get("size")
    found.files = numbers.get("files")
    found.rows = numbers.get("rows") if jsonl else None
    if not found.missing and not found.error and not found.sha256:
        found.error = _("the check gave no hash")
    return found


def _apply(dataset: Dataset, found: Found) -> None:
    now = timezone.now()
    fields: dict[str, Any] = {"checked_at": now, "recheck": False}
    if dataset.recheck and dataset.sha256:
        if found.missing or found.error:
            fields["check_message"] = inputs.short(
                _("Checked again: %(what)s. The registered version is unchanged.")
                % {"what": _("not found on the cluster") if found.missing else found.error},
                500,
            )
        elif found.sha256 != dataset.sha256:
            fields["state"] = Dataset.State.CHANGED
            fields["check_message"] = _(
                "Hash mismatch: the files at this path now hash to %(now)s, registered as %(then)s. "
                "The record is unchanged; register the new contents as a new version."
            ) % {"now": found.sha256[:12], "then": dataset.sha256[:12]}
        else:
            fields["state"] = Dataset.State.READY
            fields["check_message"] = _("Checked again: unchanged.")
    elif found.missing:
        fields.update(state=Dataset.State.MISSING, check_message=_("Not found on the cluster."))
    elif found.error:
        fields.update(state=Dataset.State.FAILED, check_message=found.error)
    else:
        fields.update(
            state=Dataset.State.READY,
            sha256=found.sha256,
            size_bytes=found.size,
            files=found.files,
            rows=found.rows,
            is_directory=found.is_directory,
            check_message="",
        )
    Dataset.objects.filter(pk=dataset.pk).update(**fields)


def _fail(dataset: Dataset, message: str) -> None:
    state = dataset.state if dataset.recheck and dataset.sha256 else Dataset.State.FAILED
    Dataset.objects.filter(pk=dataset.pk).update(
        state=state, recheck=False, check_message=inputs.short(message, 500), checked_at=timezone.now()
    )


def check_datasets(poll: Poll) -> None:
    """Start the checks waiting to start; read (and remove) the answers of those started: one command per
    data set either way."""
    waiting = list(
        Dataset.objects.filter(cluster=poll.cluster)
        .filter(Q(state=Dataset.State.CHECKING) | Q(recheck=True))
        .order_by("pk")[:MAX_CHECKS_PER_VISIT]
    )
    now = timezone.now()
    for dataset in waiting:
        try:
            conn = poll.as_user(dataset.check_user)
        except identity.AccountError as error:
            _fail(dataset, str(error))
            continue
        if dataset.check_started_at is None:
            dataset.check_started_at = now
            out = result_path(poll.cluster, dataset)
            conn.run_shell(start_command(dataset.path, out), timeout=30).check()
            Dataset.objects.filter(pk=dataset.pk).update(check_started_at=now)
            continue
        # The answer is renamed into place whole: once there, it is read and removed in one command.
        out = result_path(poll.cluster, dataset)
        result = conn.run_shell(ssh.chain_commands(["cat", out], ["rm", "-f", out]), timeout=30)
        found = parse_result(result.stdout[:RESULT_BYTES]) if result.ok else None
        if found is not None:
            _apply(dataset, found)
        elif result.ok:
            _fail(dataset, _("The check on the cluster gave an answer that could not be read."))
        elif now - dataset.check_started_at > CHECK_TIMEOUT:
            _fail(dataset, _("The check on the cluster gave no answer in 12 hours."))


# --- the scheduler's hooks ------------------------------------------------------------------------------


def usable(cluster_id: int | None = None) -> Any:
    """Data sets a training job may name: ready files of a data format."""
    found = Dataset.objects.filter(state=Dataset.State.READY, is_directory=False)
    if cluster_id is not None:
        found = found.filter(cluster_id=cluster_id)
    q = Q()
    for suffix in DATA_SUFFIXES:
        q |= Q(path__endswith=suffix)
    return found.filter(q)


def choices() -> list[tuple[str, str]]:
    """(ref, label) of every usable data set, for the training form (settings.TRAINING_DATASET_CHOICES)."""
    rows = usable().select_related("cluster").order_by("name", "-created_at")
    return [
        (d.ref, f"{d.ref} · {d.cluster.name}" + (f" · {d.rows:,} rows" if d.rows is not None else ""))
        for d in rows
    ]


def resolve(refs: list[str], cluster: Cluster | None) -> tuple[list[dict[str, Any]], list[str]]:
    """The data sets a training request names, as run.yaml and the job keep them ({id, ref, path,
    sha256}), and what is wrong with the names (settings.TRAINING_DATASETS)."""
    errors: list[str] = []
    wanted: list[tuple[str, str]] = []
    for ref in refs:
        match = REF_RE.match(ref)
        if match is None:
            errors.append(_("%(ref)s: name a data set as name@version.") % {"ref": inputs.short(ref, 80)})
        else:
            wanted.append((match["name"], match["version"]))
    if errors or not wanted:
        return [], errors
    q = Q()
    for name, version in wanted:
        q |= Q(name=name, version=version)
    known = {(d.name, d.version): d for d in Dataset.objects.filter(q)}
    found = []
    for name, version in wanted:
        dataset = known.get((name, version))
        ref = f"{name}@{version}"
        if dataset is None:
            errors.append(_("%(ref)s is not a registered data set.") % {"ref": ref})
        elif dataset.state != Dataset.State.READY:
            errors.append(_("%(ref)s: %(state)s.") % {"ref": ref, "state": dataset.get_state_display()})
        elif cluster is not None and dataset.cluster_id != cluster.pk:
            errors.append(
                _("%(ref)s is on %(there)s, not on %(here)s.")
                % {"ref": ref, "there": dataset.cluster.name, "here": cluster.name}
            )
        elif dataset.is_directory or not dataset.path.endswith(DATA_SUFFIXES):
            errors.append(_("%(ref)s is not a .jsonl, .json or .parquet file.") % {"ref": ref})
        else:
            found.append({"id": dataset.pk, "ref": ref, "path": dataset.path, "sha256": dataset.sha256})
    return found, errors
