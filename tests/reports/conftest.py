"""A week of the fine-tuning subteam (`sft`) for the report tests: last week, so that every row is in
the past whatever day the tests run.

Done: "Compare LoRA ranks" (with a note), blocked: "Wait for the 100k set"; the goal "MT-Bench 7.5"
changed to at risk with a reason; three jobs with 24 + 12 + 32 (of 64, half inside the week) GPU-hours;
one 8-GPU booking of 12 hours (96 GPU-hours) around the first job; a new best score of 7.2 (6.9 before).
Rows that must stay out: an older done task, another subteam's job and result, a baseline, a booking
only requested.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from evals.models import EvalResult
from lending.models import Reservation
from portal import services as portal_services
from portal.models import Goal, GoalRevision, Member, Membership, Task
from reports import weeks
from scheduler.models import Cluster, Job
from tests.personas import Team, make_user
from tests.slackbot.conftest import fake_slack, linked, slack_settings, slash  # noqa: F401
from tests.slackbot.helpers import make_cluster


def at(week: dt.date, day: int, hour: float) -> dt.datetime:
    """`hour` o'clock on day `day` (0: Monday) of the week, in the portal's time zone."""
    start, _end = weeks.bounds(week)
    return start + dt.timedelta(days=day, hours=hour)


@dataclasses.dataclass
class Week:
    week: dt.date
    cluster: Cluster
    done: Task
    blocked: Task
    goal: Goal
    jobs: list[Job]
    booking: Reservation
    best: EvalResult


def make_job(team: Team, cluster: Cluster, name: str, start: dt.datetime, hours: float, **fields: Any) -> Job:
    fields.setdefault("subteam", team.sft)
    gpus = fields.pop("gpus", 8)
    return Job.objects.create(
        name=name,
        owner=team.member("member"),
        cluster=cluster,
        command="python train.py",
        script="#!/bin/bash\n",
        partition="gpu",
        time_limit_minutes=600,
        gpus_per_node=8,
        gpus=gpus,
        state=fields.pop("state", Job.State.COMPLETED),
        slurm_job_id="4242",
        started_at=start,
        ended_at=start + dt.timedelta(hours=hours),
        gpu_hours=gpus * hours,
        **fields,
    )


def make_week(team: Team, week: dt.date) -> Week:
    cluster = make_cluster()
    done = Task.objects.create(
        subteam=team.sft,
        title="Compare LoRA ranks",
        status=Task.Status.DONE,
        learnings="Rank 16 was enough; rank 64 overfit the 100k set.",
    )
    done.assignees.set([team.member("member")])
    old = Task.objects.create(subteam=team.sft, title="Old work", status=Task.Status.DONE, learnings="old")
    blocked = Task.objects.create(
        subteam=team.sft,
        title="Wait for the 100k set",
        status=Task.Status.BLOCKED,
        description="The data team's export is stuck.",
    )
    Task.objects.create(subteam=team.sft, title="Not yet", status=Task.Status.TODO)
    Task.objects.filter(pk=done.pk).update(updated_at=at(week, 3, 15))
    Task.objects.filter(pk=old.pk).update(updated_at=at(week, -3, 15))
    Task.objects.filter(pk=blocked.pk).update(updated_at=at(week, 1, 9))

    goal = portal_services.create_goal(team.member("lead"), subteam=team.sft, title="MT-Bench 7.5")
    GoalRevision.objects.filter(goal=goal).update(created_at=at(week, -14, 11))
    change = portal_services.update_goal(
        team.member("lead"), goal, {"status": Goal.Status.AT_RISK}, reason="The loss spiked at 60% of the run"
    )
    assert change is not None
    GoalRevision.objects.filter(pk=change.pk).update(created_at=at(week, 2, 11))
    goal.refresh_from_db()

    jobs = [
        make_job(team, cluster, "sft-lora-r16", at(week, 1, 10), 3),  # 24 GPU-hours, inside the booking
        make_job(team, cluster, "dpo-beta", at(week, 2, 9), 1.5, state=Job.State.FAILED),  # 12
        make_job(team, cluster, "pretrain-tail", at(week, 0, -4), 8),  # 64, half of it in the week
        make_job(team, cluster, "other-team", at(week, 1, 10), 5, subteam=team.pretrain),
    ]
    booking = Reservation.objects.create(
        requester=team.member("lead"),
        subteam=team.sft,
        cluster=cluster,
        gpus=8,
        gpus_per_node=8,
        start=at(week, 1, 9),
        end=at(week, 1, 21),
        purpose="LoRA sweep",
        state=Reservation.State.FINISHED,
    )
    Reservation.objects.create(
        requester=team.member("lead"),
        subteam=team.sft,
        cluster=cluster,
        gpus=16,
        gpus_per_node=8,
        start=at(week, 4, 9),
        end=at(week, 4, 21),
        purpose="only asked for",
        state=Reservation.State.REQUESTED,
    )

    def result(name: str, average: float, when: dt.datetime, **fields: Any) -> EvalResult:
        fields.setdefault("subteam", team.sft)
        return EvalResult.objects.create(model_name=name, average=average, created_at=when, **fields)

    result("sft-v1", 6.9, at(week, -10, 12))
    best = result("sft-v2-lora16", 7.2, at(week, 4, 12))
    result("sft-v2-lora64", 6.5, at(week, 4, 13))
    result("gpt-reference", 7.9, at(week, 4, 12), subteam=None, is_baseline=True)
    result("pretrain-ckpt", 8.1, at(week, 4, 12), subteam=team.pretrain)
    return Week(week, cluster, done, blocked, goal, jobs, booking, best)


@pytest.fixture
def last_week() -> dt.date:
    return weeks.this_week() - dt.timedelta(days=7)


@pytest.fixture
def sft_week(team: Team, last_week: dt.date) -> Week:
    return make_week(team, last_week)


@pytest.fixture
def other_lead(team: Team) -> Member:
    """The lead of another subteam (pretrain): leads write their own subteam's reports only."""
    user = make_user("pretrainlead")
    Membership.objects.create(
        member=user.member, subteam=team.pretrain, role=Membership.Role.LEAD, started=dt.date(2024, 6, 1)
    )
    return user.member
