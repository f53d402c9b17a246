"""Demo evaluation results: the team's real Japanese MT-Bench figures (the shared DOMAIN.md), placed on
the demo plan's calendar (see `portal.demo`), and the external reference model as a baseline.

`load(today)` runs after `portal.demo.load_demo` (goals exist then): results enter through
`evals.services`, so the demo's MT-Bench goals move the way real results move them. Loading twice
changes nothing: a result already there (same model and source) is kept.

The 8x8B MoE DPO result (7.91) came at the end of the project, after the demo's "today" (week 7 of 10):
it is loaded only with `final_push=True`, which also achieves the MT-Bench goals it meets.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from django.db import transaction

from evals import services
from evals.models import CATEGORIES, DEFAULT_BENCHMARK, EvalResult
from portal.demo import Plan
from portal.models import Subteam

POST_TRAINING = "post-training"


@dataclasses.dataclass(frozen=True)
class DemoResult:
    model_name: str
    day: str  # a plan date "MM-DD" (2024)
    average: float
    categories: tuple[float, ...] = ()  # in CATEGORIES order, or none known
    is_baseline: bool = False
    notes: str = ""
    final_push: bool = False

    @property
    def scores(self) -> dict[str, float | None]:
        if not self.categories:
            return {}
        return dict(zip(CATEGORIES, self.categories, strict=True))


# fmt: off
RESULTS: tuple[DemoResult, ...] = (
    DemoResult(
        "External reference model", "06-01", 7.81, (5.20, 8.15, 9.40, 6.10, 6.80, 8.55, 9.35, 8.90),
        is_baseline=True, notes="The strongest external model on Japanese MT-Bench (judge gpt-4): the score to beat.",
    ),
    DemoResult(
        "8B LoRA SFT (100k examples)", "07-03", 3.119,
        notes="First SFT comparison on the 8B base with a 100k-example set: LoRA.",
    ),
    DemoResult(
        "8B full SFT (100k examples)", "07-03", 2.444,
        notes="Same data, full fine-tuning; the SFT data was judged the likely cause of the low scores.",
    ),
    DemoResult("8B full SFT + DPO", "07-12", 7.03, notes="8b-sft-dpo-v2: full SFT on the new data, then DPO."),
    DemoResult(
        "8x8B MoE DPO", "08-08", 7.91, (6.75, 6.90, 9.30, 5.75, 7.35, 8.95, 9.40, 8.85),
        notes="The final model: SFT + DPO on the 8x8B MoE upcycled from the 8B.", final_push=True,
    ),
)
# fmt: on


def load(today: dt.date | None = None, *, final_push: bool = False) -> list[EvalResult]:
    """Create the demo's baselines and results (judge gpt-4) if missing; returns those created."""
    plan = Plan.for_today(today)
    subteam = Subteam.objects.filter(slug=POST_TRAINING).first()
    created = []
    with transaction.atomic():
        for spec in RESULTS:
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
                categories=spec.scores,
                subteam=scope,
                notes=spec.notes,
                judge_model="gpt-4",
                at=plan.at(spec.day),
            )
            created.append(result)
    return created
