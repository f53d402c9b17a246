"""The demo's results (demo/results.py): DOMAIN.md's figures, loaded after the portal's demo, idempotent, moving goals."""

from __future__ import annotations

import datetime as dt

import pytest

from demo import results as demo
from demo.team import load_demo
from evals.models import EvalResult
from portal.models import Goal

TODAY = dt.date(2026, 11, 28)


@pytest.fixture
def demo_team(db: None) -> None:
    load_demo(TODAY, password="demo")


def test_the_demo_has_the_reference_baseline_and_the_teams_results(demo_team: None) -> None:
    created = demo.load(TODAY)
    assert len(created) == 4
    baseline = EvalResult.objects.get(is_baseline=True)
    assert (baseline.model_name, baseline.average, baseline.coding, baseline.subteam) == (
        "External reference model",
        7.81,
        5.2,
        None,
    )
    team = EvalResult.objects.filter(is_baseline=False)
    assert sorted(team.values_list("average", flat=True)) == [2.444, 3.119, 7.03]
    assert {r.subteam.slug for r in team if r.subteam} == {"post-training"}
    assert demo.load(TODAY) == []  # twice: nothing new
    assert EvalResult.objects.count() == 4


def test_the_demo_results_leave_the_plan_s_goals_as_the_plan_tells(demo_team: None) -> None:
    demo.load(TODAY)
    project = Goal.objects.get(title="Top score on Japanese MT-Bench")
    moe = Goal.objects.get(title="Final SFT + DPO on the 8x8B MoE")
    assert (project.metric_current, project.status) == (7.03, Goal.Status.ON_TRACK)
    assert moe.metric_current is None  # it starts after these results


def test_the_final_push_achieves_the_mt_bench_goals(demo_team: None) -> None:
    demo.load(TODAY, final_push=True)
    final = EvalResult.objects.get(model_name="8x8B MoE DPO")
    project = Goal.objects.get(title="Top score on Japanese MT-Bench")
    assert (project.metric_current, project.status) == (7.91, Goal.Status.ACHIEVED)
    revision = project.revisions.filter(source=f"eval:{final.pk}").get()
    assert revision.reason == "MT-Bench result of 8x8B MoE DPO (entered by hand): 7.91"
    moe = Goal.objects.get(title="Final SFT + DPO on the 8x8B MoE")
    assert (moe.metric_current, moe.status) == (7.91, Goal.Status.ACHIEVED)
