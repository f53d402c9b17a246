"""Demo evaluation results: the team's real Japanese MT-Bench figures (the shared DOMAIN.md), placed on
the demo plan's calendar (demo/plan.py), and the external reference model as a baseline. The figures are
in demo/data/eval_results.yaml.

`load(today)` runs after `demo.team.load_demo` (goals exist then): results enter through
`evals.services`, so the demo's MT-Bench goals move the way real results move them. Loading twice
changes nothing: a result already there (same model and source) is kept.

The 8x8B MoE DPO result (7.91) came at the end of the project, after the demo's "today" (week 7 of 10):
it is loaded only with `final_push=True`, which also achieves the MT-Bench goals it meets.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools

from django.db import transaction

from demo import datafiles
from demo.plan import Plan
from evals import services
from evals.models import CATEGORIES, DEFAULT_BENCHMARK, EvalResult
from portal.models import Subteam

POST_TRAINING = "post-training"


@dataclasses.dataclass(frozen=True)
class DemoResult:
    model_name: str
    day: str  # a plan date "MM-DD" (2024)
    average: float
    categories: dict[str, float] = dataclasses.field(default_factory=dict)  # none known: empty
    is_baseline: bool = False
    notes: str = ""
    final_push: bool = False

    def __post_init__(self) -> None:
        unknown = set(self.categories) - set(CATEGORIES)
        if unknown:
            raise ValueError(f"{self.model_name}: unknown MT-Bench categories {sorted(unknown)}")


@functools.cache
def results() -> tuple[DemoResult, ...]:
    return tuple(DemoResult(**row) for row in datafiles.read("eval_results.yaml"))


def load(today: dt.date | None = None, *, final_push: bool = False) -> list[EvalResult]:
    """Create the demo's baselines and results (judge gpt-4) if missing; returns those created."""
    plan = Plan.for_today(today)
    subteam = Subteam.objects.filter(slug=POST_TRAINING).first()
    created = []
    with transaction.atomic():
        for spec in results():
            if spec.final_push and not final_push:
                continue
            scope = None if spec.is_baseline else subteam
            if EvalResult.objects.filter(
                model_name=spec.model_name, is_baseline=spec.is_baseline, benchmark=DEFAULT_BENCHMARK
            ).exists():
                continue
            add = services.add_baseline if spec.is_baseline else services.add_result
            result = add(
                None,
                model_name=spec.model_name,
                average=spec.average,
                categories=spec.categories,
                subteam=scope,
                notes=spec.notes,
                judge_model="gpt-4",
                at=plan.at(spec.day),
            )
            created.append(result)
    return created
