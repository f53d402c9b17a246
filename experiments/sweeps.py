"""Sweeps: one training run's fields, with some varied over lists of values, submitted as one unit.

`plan` expands the axes (every combination, or the i-th value of each) into runs and refuses the whole
sweep with which run and why when any run fails the form's checks (`scheduler.services.validate_spec`,
the same as a single job), when there are none or more than settings.SWEEP_MAX_RUNS, when a field may not
be varied, and when the sweep does not fit the subteam's booking or its weekly GPU-hours (the arithmetic
said). `submit` records the sweep and its runs in one transaction: each run a job, or a pipeline (train →
MT-Bench evaluation of its output) when an evaluation is asked for.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import math
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import OuterRef, Q, Subquery, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from evals.models import EvalResult
from experiments.compare import MISSING, show
from experiments.models import Sweep, SweepRun
from lending.jobs import reservation_for_job
from lending.models import Reservation, SubteamQuota
from metrics.models import MetricPoint
from portal.models import Member
from scheduler import inputs, services, training_jobs
from scheduler.models import Job
from scheduler.services import JobSpec

# The fields a sweep may vary: the hyperparameters, LoRA, the data and the base model.
SWEEPABLE = (
    "learning_rate",
    "lr_scheduler_type",
    "warmup_ratio",
    "num_train_epochs",
    "max_steps",
    "micro_batch_size",
    "global_batch_size",
    "gradient_accumulation_steps",
    "max_length",
    "lora",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "dpo_beta",
    "datasets",
    "train_files",
    "model",
)
MAX_VALUES = 64  # per field
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,55}\Z")  # room for "-NN-eval"


def max_runs() -> int:
    return int(getattr(settings, "SWEEP_MAX_RUNS", 64))


def sweepable(kind: str) -> list[training_jobs.DeclaredField]:
    declared = {d.name: d for d in training_jobs.declared_fields(kind)}
    return [declared[name] for name in SWEEPABLE if name in declared]


@dataclass
class Axis:
    field: str
    values: list[Any]


def _typed(declared: training_jobs.DeclaredField, value: Any) -> Any:
    """One value of a varied field, as the field's type (text from the form, JSON from the API)."""
    if declared.base is list:
        return [str(v) for v in value] if isinstance(value, list) else [str(value).strip()]
    if declared.base is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ValueError(_("“%(v)s” is not true or false") % {"v": inputs.short(str(value), 40)})
    if declared.base in (int, float):
        if isinstance(value, bool):
            raise ValueError(_("“%(v)s” is not a number") % {"v": value})
        try:
            number = float(str(value).strip())
        except ValueError:
            raise ValueError(_("“%(v)s” is not a number") % {"v": inputs.short(str(value), 40)}) from None
        if not math.isfinite(number):
            raise ValueError(_("“%(v)s” is not a number") % {"v": inputs.short(str(value), 40)})
        if declared.base is int:
            if number != int(number):
                raise ValueError(_("“%(v)s” is not a whole number") % {"v": inputs.short(str(value), 40)})
            return int(number)
        return number
    text = str(value).strip()
    if declared.how.choices and text not in [c for c, _label in declared.how.choices]:
        raise ValueError(_("“%(v)s” is not one of the choices") % {"v": inputs.short(text, 40)})
    return text


def split_values(text: str) -> list[str]:
    """A form's values: separated by commas, spaces or lines."""
    return [v for v in re.split(r"[,\s]+", text or "") if v]


def parse_axes(kind: str, raw: list[tuple[str, list[Any]]]) -> list[Axis]:
    """The varied fields, typed; ValidationError({"axes": [...]}) naming what is wrong."""
    declared = {d.name: d for d in sweepable(kind)}
    errors: list[str] = []
    axes: list[Axis] = []
    seen: set[str] = set()
    for name, values in raw:
        if name not in declared:
            errors.append(
                _("%(field)s is not a field a %(kind)s sweep can vary (it can vary: %(fields)s).")
                % {"field": inputs.short(str(name), 40), "kind": kind, "fields": ", ".join(declared)}
            )
            continue
        if name in seen:
            errors.append(_("%(field)s is varied twice: give all its values in one row.") % {"field": name})
            continue
        seen.add(name)
        if not values:
            errors.append(_("%(field)s: give at least one value.") % {"field": name})
            continue
        if len(values) > MAX_VALUES:
            errors.append(_("%(field)s: at most %(n)d values.") % {"field": name, "n": MAX_VALUES})
            continue
        typed = []
        for value in values:
            try:
                typed.append(_typed(declared[name], value))
            except ValueError as error:
                errors.append(f"{name}: {error}.")
                break
        if len(typed) == len(values):
            if len({repr(v) for v in typed}) != len(typed):
                errors.append(_("%(field)s: a value is given twice.") % {"field": name})
            axes.append(Axis(name, typed))
    if not raw and not errors:
        errors.append(_("Vary at least one field."))
    if errors:
        raise ValidationError({"axes": errors})
    return axes


def run_count(axes: list[Axis], mode: str) -> int:
    """How many runs the axes make (counted, not built: a grid of many fields can be astronomically big)."""
    if mode == Sweep.Mode.LIST:
        lengths = {len(axis.values) for axis in axes}
        if len(lengths) > 1:
            raise ValidationError(
                {
                    "axes": [
                        _("Side by side, every field needs as many values: %(counts)s.")
                        % {"counts": ", ".join(f"{a.field} {len(a.values)}" for a in axes)}
                    ]
                }
            )
        return lengths.pop() if lengths else 0
    return math.prod(len(axis.values) for axis in axes) if axes else 0


def expand(axes: list[Axis], mode: str) -> list[dict[str, Any]]:
    """The runs' values: every combination (grid) or the i-th value of each field (list)."""
    if mode == Sweep.Mode.LIST:
        return [{a.field: a.values[i] for a in axes} for i in range(run_count(axes, mode))]
    return [
        dict(zip([a.field for a in axes], combo, strict=True))
        for combo in itertools.product(*(a.values for a in axes))
    ]


def describe(values: dict[str, Any]) -> str:
    return ", ".join(f"{key}={show(value)}" for key, value in values.items())


@dataclass
class Plan:
    name: str
    kind: str
    mode: str
    axes: list[Axis]
    base: JobSpec  # the shared fields; each run's spec is a copy with its values
    runs: list[tuple[dict[str, Any], JobSpec, JobSpec | None]]  # (values, training spec, eval spec)
    eval_spec: JobSpec | None = None

    @property
    def gpu_hours(self) -> float:
        return sum(
            spec.nodes * spec.gpus_per_node * spec.time_limit_minutes / 60
            for _values, train, evaluation in self.runs
            for spec in (train, evaluation)
            if spec is not None
        )


def _copy(spec: JobSpec, name: str, training: training_jobs.TrainingRequest | None) -> JobSpec:
    return dataclasses.replace(spec, name=name, training=training)


def _variant(base: training_jobs.TrainingRequest, values: dict[str, Any]) -> training_jobs.TrainingRequest:
    request = dataclasses.replace(base, **values)
    if "lora_r" in values or "lora_alpha" in values or "lora_dropout" in values:
        request.lora = values.get("lora", True)  # varying a LoRA field means training a LoRA adapter
    return request


def _hours(spec: JobSpec) -> float:
    return spec.nodes * spec.gpus_per_node * spec.time_limit_minutes / 60


def _arithmetic(plan: Plan) -> str:
    """ "4 runs × 1 GPU × 60 min + 4 evaluations × 1 GPU × 30 min = 6.0 GPU-hours"."""
    train = plan.runs[0][1]
    parts = [
        _("%(n)d runs × %(g)d GPU × %(m)d min")
        % {"n": len(plan.runs), "g": train.nodes * train.gpus_per_node, "m": train.time_limit_minutes}
    ]
    if plan.eval_spec is not None:
        e = plan.eval_spec
        parts.append(
            _("%(n)d evaluations × %(g)d GPU × %(m)d min")
            % {"n": len(plan.runs), "g": e.nodes * e.gpus_per_node, "m": e.time_limit_minutes}
        )
    return " + ".join(parts) + " = " + _("%(h).1f GPU-hours") % {"h": plan.gpu_hours}


def fit_problems(plan: Plan, now: dt.datetime | None = None) -> list[str]:
    """Why the sweep would not fit: a run larger than the booking its jobs go into, more GPU-hours than
    the booking has left, a run larger than the subteam's GPUs at once, or more GPU-hours than its
    weekly quota has left (counting its jobs' GPU-hours this week)."""
    now = now or timezone.now()
    train = plan.runs[0][1]
    subteam, cluster = train.subteam, train.cluster
    problems: list[str] = []
    widest = max(
        spec.nodes * spec.gpus_per_node for _v, t, e in plan.runs for spec in (t, e) if spec is not None
    )
    probe = Job(
        subteam=subteam, cluster=cluster, account=train.account, time_limit_minutes=train.time_limit_minutes
    )
    slurm_name = reservation_for_job(probe)
    booking = Reservation.objects.filter(slurm_name=slurm_name).first() if slurm_name else None
    if booking is not None:
        held = booking.held_gpus
        left = max(0.0, (booking.end - now).total_seconds() / 3600)
        if widest > held:
            problems.append(
                _(
                    "A run needs %(need)d GPUs; booking #%(id)d, where %(subteam)s's jobs run now, holds %(held)d."
                )
                % {"need": widest, "id": booking.pk, "subteam": subteam.name, "held": held}
            )
        room = held * left
        if plan.gpu_hours > room + 0.01:  # a minute's rounding of the time left
            problems.append(
                _(
                    "The sweep asks for %(asked)s; booking #%(id)d has %(held)d GPUs × %(left).1f h left = "
                    "%(room).1f GPU-hours. Fewer runs, shorter time limits, or a longer booking."
                )
                % {"asked": _arithmetic(plan), "id": booking.pk, "held": held, "left": left, "room": room}
            )
    quota = SubteamQuota.objects.filter(subteam=subteam).first()
    if quota is not None and quota.max_gpus is not None and widest > quota.max_gpus:
        problems.append(
            _("A run needs %(need)d GPUs; %(subteam)s may use %(max)d at once.")
            % {"need": widest, "subteam": subteam.name, "max": quota.max_gpus}
        )
    if quota is not None and quota.max_gpu_hours_per_week is not None:
        local = timezone.localtime(now)
        week_start = (local - dt.timedelta(days=local.weekday())).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        used = (
            Job.objects.filter(subteam=subteam)
            .filter(Q(ended_at__gte=week_start) | Q(ended_at__isnull=True, started_at__isnull=False))
            .aggregate(total=Sum("gpu_hours"))["total"]
            or 0.0
        )
        left = quota.max_gpu_hours_per_week - used
        if plan.gpu_hours > left + 0.01:
            problems.append(
                _(
                    "The sweep asks for %(asked)s; %(subteam)s's quota is %(quota)d GPU-hours a week and its jobs "
                    "used %(used).1f this week: %(left).1f left."
                )
                % {
                    "asked": _arithmetic(plan),
                    "subteam": subteam.name,
                    "quota": quota.max_gpu_hours_per_week,
                    "used": used,
                    "left": max(0.0, left),
                }
            )
    return problems


def plan(
    *,
    name: str,
    base: JobSpec,
    axes_raw: list[tuple[str, list[Any]]],
    mode: str = Sweep.Mode.GRID,
    eval_spec: JobSpec | None = None,
) -> Plan:
    """Every run of the sweep, each validated; ValidationError (name, axes, runs, fit) otherwise."""
    errors: dict[str, list[str]] = {}
    if not NAME_RE.match(name or ""):
        errors["name"] = [
            _("1-56 letters, digits, dots, dashes or underscores, starting with a letter or digit.")
        ]
    if base.kind not in Job.Kind.kinds_that_train() or base.training is None:
        errors["kind"] = [_("A sweep varies a training run: pretraining, SFT or DPO.")]
    if mode not in Sweep.Mode.values:
        errors["mode"] = [_("Grid or side by side.")]
    if errors:
        raise ValidationError(errors)
    assert base.training is not None
    axes = parse_axes(base.kind, axes_raw)
    count = run_count(axes, mode)
    if not count:
        raise ValidationError({"axes": [_("The sweep has no runs.")]})
    if count > max_runs():
        raise ValidationError(
            {
                "axes": [
                    _("The sweep has %(n)d runs (%(sizes)s); at most %(max)d may be submitted at once.")
                    % {
                        "n": count,
                        "sizes": " × ".join(str(len(a.values)) for a in axes),
                        "max": max_runs(),
                    }
                ]
            }
        )
    combos = expand(axes, mode)
    runs: list[tuple[dict[str, Any], JobSpec, JobSpec | None]] = []
    problems: list[str] = []
    for number, values in enumerate(combos, start=1):
        run_name = f"{name}-{number:02d}"
        train = _copy(base, run_name, _variant(base.training, values))
        evaluation = None
        if eval_spec is not None:
            evaluation = _copy(
                eval_spec,
                f"{run_name}-eval",
                dataclasses.replace(eval_spec.training) if eval_spec.training else None,
            )
            evaluation.model_from_previous = True
            if evaluation.training is not None:
                evaluation.training.model = ""  # each evaluation reads its own run's output
        for what, spec in (("", train), (_(" (its evaluation)"), evaluation)):
            if spec is None:
                continue
            try:
                services.validate_spec(spec)
            except ValidationError as error:
                said = "; ".join(
                    f"{field}: {' '.join(messages)}" for field, messages in error.message_dict.items()
                )
                problems.append(
                    _("Run %(n)d%(what)s (%(values)s): %(said)s")
                    % {"n": number, "what": what, "values": describe(values), "said": said}
                )
        runs.append((values, train, evaluation))
        if len(problems) >= 10:
            break
    if problems:
        raise ValidationError({"runs": problems})
    found = Plan(name=name, kind=base.kind, mode=mode, axes=axes, base=base, runs=runs, eval_spec=eval_spec)
    if fits := fit_problems(found):
        raise ValidationError({"fit": fits})
    return found


@transaction.atomic
def submit(actor: Member, found: Plan) -> Sweep:
    """Record the sweep and submit every run (a pipeline train → eval when asked for), all or nothing."""
    base = found.base
    assert base.training is not None
    sweep = Sweep.objects.create(
        name=found.name,
        owner=actor,
        subteam=base.subteam,
        cluster=base.cluster,
        kind=found.kind,
        mode=found.mode,
        axes=[{"field": a.field, "values": a.values} for a in found.axes],
        base={
            "training": base.training.as_dict(),
            "nodes": base.nodes,
            "gpus_per_node": base.gpus_per_node,
            "time_limit_minutes": base.time_limit_minutes,
            "partition": base.partition,
            "eval": found.eval_spec.training.as_dict()
            if found.eval_spec and found.eval_spec.training
            else None,
        },
        with_eval=found.eval_spec is not None,
    )
    for number, (values, train, evaluation) in enumerate(found.runs, start=1):
        if evaluation is None:
            job = services.submit_job(actor, train)
            SweepRun.objects.create(sweep=sweep, number=number, values=values, job=job)
            continue
        pipeline = services.submit_pipeline(actor, train.name, [train, evaluation])
        steps = pipeline.steps()
        SweepRun.objects.create(
            sweep=sweep,
            number=number,
            values=values,
            job=steps[0],
            eval_job=steps[1],
            pipeline=pipeline,
        )
    return sweep


# --- the sweep's table ----------------------------------------------------------------------------------

LOSS_KEY = "train/loss"


@dataclass
class Row:
    run: SweepRun
    cells: list[str]  # the varied fields' values, as shown
    loss: float | None  # the last training loss logged
    result: EvalResult | None
    best: bool = False

    @property
    def score(self) -> float | None:
        return self.result.average if self.result is not None else None


def table(sweep: Sweep) -> list[Row]:
    """The sweep's runs with their last loss and evaluation (one query), the best average marked."""
    last_loss = Subquery(
        MetricPoint.objects.filter(job_id=OuterRef("job_id"), key=LOSS_KEY)
        .order_by("-step", "-seq")
        .values("value")[:1]
    )
    runs = (
        SweepRun.objects.filter(sweep=sweep)
        .select_related("job", "eval_job", "eval_job__eval_result")
        .annotate(last_loss=last_loss)
        .order_by("number")
    )
    rows = []
    for run in runs:
        result = getattr(run.eval_job, "eval_result", None) if run.eval_job is not None else None
        cells = [show(run.values.get(name, MISSING)) for name in sweep.fields]
        rows.append(Row(run, cells, run.last_loss, result))
    scored = [r for r in rows if r.score is not None]
    if scored:
        max(scored, key=lambda r: (r.score, -r.run.number)).best = True
    return rows


def sort_rows(rows: list[Row], sort: str, fields: list[str]) -> list[Row]:
    """By a varied field, "score", "loss" or "number" ("-" first: descending); rows without one last."""
    key = sort.lstrip("-")

    def value(row: Row) -> Any:
        if key == "score":
            return row.score
        if key == "loss":
            return row.loss
        if key in fields:
            raw = row.run.values.get(key)
            return raw if isinstance(raw, int | float) else show(raw)
        return row.run.number

    present = sorted((r for r in rows if value(r) is not None), key=value, reverse=sort.startswith("-"))
    return present + [r for r in rows if value(r) is None]
