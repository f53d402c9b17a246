"""`manage.py load_demo` (demo/team.py, demo/data/): the shape of the demo team, idempotence, sign-in, and dates relative to today."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections import Counter
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from demo import team as demo
from demo.plan import PLAN_END, PLAN_START, Plan, plan_shift
from portal.models import Goal, GoalRevision, Member, Membership, Milestone, Subteam, Task

pytestmark = pytest.mark.django_db

PINNED = dt.date(2025, 3, 5)  # a Wednesday, far from the real 2024 plan
# The one milestone the data marks overdue (past, not done), by title.
OVERDUE = [m.title for m in demo.read_team().milestones if m.overdue]
SLUGS = {
    "management",
    "pretrain-data",
    "instruction-data",
    "synthetic-data",
    "post-training",
    "moe",
    "merge",
    "multimodal",
    "agent",
    "code",
    "tokenizer",
    "training-code",
}


@pytest.fixture(autouse=True)
def _no_demo_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)


@pytest.fixture
def loaded() -> demo.DemoSummary:
    return demo.load_demo(today=PINNED)


def _rows(values: Any) -> list[tuple[str, ...]]:
    """Sortable rows (None and dates as strings)."""
    return sorted(tuple("" if v is None else str(v) for v in row) for row in values)


def snapshot() -> dict[str, Any]:
    """Everything the demo writes, by natural keys (ids of rebuilt goals may change)."""
    return {
        "users": _rows(User.objects.values_list("username", "email", "is_superuser")),
        "subteams": _rows(
            Subteam.objects.values_list("slug", "name", "name_ja", "slack_channel", "status_note")
        ),
        "members": _rows(
            Member.objects.values_list("user__username", "display_name", "slack_user_id", "joined")
        ),
        "memberships": _rows(
            Membership.objects.values_list(
                "member__user__username", "subteam__slug", "role", "started", "ended"
            )
        ),
        "goals": _rows(
            Goal.objects.values_list(
                "subteam__slug", "title", "status", "start_date", "due_date", "metric_current"
            )
        ),
        "revisions": _rows(
            (
                r.goal.title,
                r.reason,
                r.source,
                json.dumps(r.changes, sort_keys=True),
                r.created_at.isoformat(),
            )
            for r in GoalRevision.objects.select_related("goal")
        ),
        "milestones": _rows(Milestone.objects.values_list("subteam__slug", "title", "date", "done")),
        "tasks": _rows(
            Task.objects.values_list(
                "subteam__slug",
                "title",
                "status",
                "priority",
                "start_date",
                "due_date",
                "goal__title",
                "learnings",
            )
        ),
        "assignees": _rows(
            Task.assignees.through.objects.values_list("task__title", "member__user__username")
        ),
    }


# --- the team --------------------------------------------------------------------------------------------


def test_45_members_including_admin(loaded: demo.DemoSummary) -> None:
    assert Member.objects.count() == 45
    admin = Member.objects.get(user__username="admin")
    assert admin.display_name == "Admin"
    assert admin.user.is_superuser and admin.user.is_staff
    assert Membership.objects.filter(member=admin, subteam__is_management=True, ended__isnull=True).exists()
    assert loaded.members == 45


def test_overview_shows_45_members(loaded: demo.DemoSummary) -> None:
    client = Client()
    assert client.login(username="admin", password=demo.DEFAULT_PASSWORD)
    response = client.get(reverse("overview"))
    assert response.status_code == 200
    assert response.context["member_count"] == 45


def test_all_subteams_with_names_and_channels(loaded: demo.DemoSummary) -> None:
    subteams = {s.slug: s for s in Subteam.objects.all()}
    assert set(subteams) == SLUGS
    assert [s.slug for s in subteams.values() if s.is_management] == ["management"]
    for subteam in subteams.values():
        assert subteam.name and subteam.name_ja and subteam.purpose and subteam.status_note
        assert subteam.slack_channel.startswith("#team-")
    assert subteams["post-training"].slack_channel == "#team-sft"


def test_one_lead_and_several_members_per_subteam(loaded: demo.DemoSummary) -> None:
    for subteam in Subteam.objects.all():
        active = Membership.objects.filter(subteam=subteam, ended__isnull=True)
        assert active.filter(role=Membership.Role.LEAD).count() == 1, subteam.slug
        assert active.filter(role=Membership.Role.MEMBER).count() >= 2, subteam.slug
    management = Membership.objects.filter(subteam__slug="management", ended__isnull=True).count()
    assert 4 <= management <= 5


def test_people_in_two_subteams_and_moves(loaded: demo.DemoSummary) -> None:
    active = Counter(Membership.objects.filter(ended__isnull=True).values_list("member_id", flat=True))
    assert sum(1 for n in active.values() if n >= 2) >= 8
    ended = Membership.objects.filter(ended__isnull=False)
    assert ended.count() >= 1
    # The June tokenizer emergency team ended; its people moved to pretraining data.
    moved = ended.filter(subteam__slug="tokenizer").values_list("member_id", flat=True)
    assert moved
    for member_id in moved:
        old = Membership.objects.get(member_id=member_id, subteam__slug="tokenizer")
        new = Membership.objects.get(member_id=member_id, subteam__slug="pretrain-data", ended__isnull=True)
        assert old.ended is not None and old.ended < new.started


def test_member_details_and_onboarding(loaded: demo.DemoSummary) -> None:
    members = list(Member.objects.select_related("user"))
    usernames = [m.username for m in members]
    assert all(u.isascii() and u == u.lower() for u in usernames)
    assert len({m.slack_user_id for m in members}) == 45
    assert all(m.slack_user_id.startswith("U0DEMO") for m in members)
    # Only a real login ticks the cluster step (the dev cluster's registration gives the accounts).
    assert not any(m.has_cluster_account or m.cluster_account for m in members)
    assert all(m.github and m.huggingface and m.wandb for m in members)
    incomplete = [m for m in members if m.onboarding_done < len(Member.ONBOARDING_FIELDS) - 1]
    assert 3 <= len(incomplete) <= 10
    assert all(m.onboarding_done >= 2 for m in incomplete)  # one or two steps missing, not everything


# --- goals, tasks ----------------------------------------------------------------------------------------


def test_project_goal_was_refocused_on_mt_bench(loaded: demo.DemoSummary) -> None:
    goal = Goal.objects.get(subteam__isnull=True, title="Top score on Japanese MT-Bench")
    assert goal.metric_name == "jmt_bench.avg"
    assert goal.metric_comparison == ">="
    assert goal.metric_target == 7.8
    assert goal.metric_current == 7.03
    assert goal.metric_baseline is not None and goal.metric_baseline < 3.2
    refocus = goal.revisions.exclude(changes__has_key="__created__").get(changes__has_key="title")
    assert refocus.changes["title"] == [
        "Build the best ~50B-class LLM possible under the cluster's conditions",
        "Top score on Japanese MT-Bench",
    ]
    assert "focus the team" in refocus.reason.lower()
    assert goal.revisions.filter(changes__has_key="__created__").count() == 1
    assert goal.revisions.exclude(source="").exists()  # an evaluation result moved metric_current


def test_goal_revisions_have_reasons(loaded: demo.DemoSummary) -> None:
    edits = GoalRevision.objects.exclude(changes__has_key="__created__")
    assert edits.count() >= 6
    assert not edits.filter(reason="").exists()
    assert GoalRevision.objects.filter(changes__has_key="__created__").count() == Goal.objects.count()
    # History is dated on the plan, before the demo's today, in order.
    cutoff = timezone.make_aware(dt.datetime.combine(PINNED, dt.time()))
    assert all(r.created_at < cutoff for r in GoalRevision.objects.all())
    for goal in Goal.objects.all():
        times = [r.created_at for r in goal.revisions.order_by("id")]
        assert times == sorted(times), goal.title


def test_goals_cover_every_status(loaded: demo.DemoSummary) -> None:
    assert set(Goal.objects.values_list("status", flat=True)) == set(Goal.Status.values)
    dense = Goal.objects.get(title__startswith="Dense ~38B")
    assert dense.status == Goal.Status.DROPPED
    assert "loss spike" in dense.revisions.filter(changes__has_key="status").first().reason.lower()
    assert Goal.objects.filter(subteam__slug="moe", title__contains="upcycled").exists()
    for goal in Goal.objects.all():
        assert goal.start_date is not None and goal.due_date is not None and goal.start_date <= goal.due_date


def test_tasks(loaded: demo.DemoSummary) -> None:
    tasks = list(Task.objects.select_related("subteam", "goal").prefetch_related("assignees"))
    assert 75 <= len(tasks) <= 90
    assert {t.status for t in tasks} == set(Task.Status.values)
    assert {t.priority for t in tasks} == set(Task.Priority.values)
    assert {t.subteam.slug for t in tasks} == SLUGS
    learned = [t for t in tasks if t.learnings]
    assert len(learned) >= 10
    assert all(t.status == Task.Status.DONE for t in learned)
    assert any("LoRA beat full SFT" in t.learnings for t in learned)
    assert sum(1 for t in tasks if t.goal is not None) >= 30
    for task in tasks:
        assert task.assignees.all(), task.title
        assert task.due_date is not None and task.start_date is not None and task.start_date <= task.due_date
        if task.goal is not None:
            assert task.goal.subteam_id in (None, task.subteam_id), task.title
        team = set(Membership.objects.filter(subteam=task.subteam).values_list("member_id", flat=True))
        assert {m.pk for m in task.assignees.all()} <= team, task.title


# --- loading again -------------------------------------------------------------------------------------


def test_loading_twice_changes_nothing(loaded: demo.DemoSummary) -> None:
    before = snapshot()
    again = demo.load_demo(today=PINNED)
    assert snapshot() == before
    assert again == loaded


def test_loading_on_a_later_day_moves_dates_without_duplicates(loaded: demo.DemoSummary) -> None:
    before = snapshot()
    start = Milestone.objects.get(title="Development window opens").date
    later = demo.load_demo(today=PINNED + dt.timedelta(days=14))
    assert {k: len(v) for k, v in snapshot().items()} == {k: len(v) for k, v in before.items()}
    assert later.goal_revisions == loaded.goal_revisions
    assert Milestone.objects.get(title="Development window opens").date == start + dt.timedelta(days=14)


def test_load_keeps_other_data(loaded: demo.DemoSummary) -> None:
    subteam = Subteam.objects.get(slug="code")
    task = Task.objects.create(subteam=subteam, title="Someone's own task")
    Goal.objects.create(subteam=subteam, title="Someone's own goal")
    demo.load_demo(today=PINNED)
    assert Task.objects.filter(pk=task.pk).exists()
    assert Goal.objects.filter(title="Someone's own goal").exists()


def test_load_is_one_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(demo, "_load_tasks", fail)
    with pytest.raises(RuntimeError):
        demo.load_demo(today=PINNED)
    assert not Member.objects.exists()
    assert not Goal.objects.exists()


# --- signing in ------------------------------------------------------------------------------------------


def test_admin_signs_in_with_the_default_password(loaded: demo.DemoSummary) -> None:
    assert Client().login(username="admin", password="demo")
    assert Client().login(username="htsuchiya", password="demo")


def test_demo_password_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    demo.load_demo(today=PINNED)
    monkeypatch.setenv("DEMO_PASSWORD", "another-demo-secret")
    summary = demo.load_demo(today=PINNED)
    assert summary.password_from_env
    assert Client().login(username="admin", password="another-demo-secret")
    assert Client().login(username="smaruyama", password="another-demo-secret")
    assert not Client().login(username="admin", password="demo")


def test_loading_again_resets_changed_passwords(loaded: demo.DemoSummary) -> None:
    user = User.objects.get(username="htsuchiya")
    user.set_password("changed-by-the-user")
    user.save()
    demo.load_demo(today=PINNED)
    assert Client().login(username="htsuchiya", password="demo")
    assert Client().login(username="admin", password="demo")


@override_settings(DEBUG=True)
def test_command_prints_a_summary_and_example_logins(monkeypatch: pytest.MonkeyPatch) -> None:
    out = StringIO()
    call_command("load_demo", "--today", PINNED.isoformat(), stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("Demo loaded: 12 subteams, 45 members")
    text = out.getvalue()
    for username in ("admin", "htsuchiya", "smaruyama"):
        assert username in text
    lead = Membership.objects.get(member__user__username="htsuchiya", subteam__slug="post-training")
    assert lead.role == Membership.Role.LEAD
    assert not Member.objects.get(user__username="smaruyama").memberships.filter(role="lead").exists()


# --- dates relative to today -----------------------------------------------------------------------------


def test_plan_shift_is_whole_weeks() -> None:
    assert plan_shift(dt.date(2024, 7, 15)) == dt.timedelta(0)
    assert plan_shift(dt.date(2024, 7, 21)) == dt.timedelta(0)
    assert plan_shift(dt.date(2024, 7, 22)) == dt.timedelta(weeks=1)
    assert plan_shift(dt.date(2024, 7, 14)) == dt.timedelta(weeks=-1)
    for today in (dt.date(2025, 3, 5), dt.date(2026, 11, 29), dt.date(2023, 1, 1)):
        plan = Plan.for_today(today)
        assert plan.shift.days % 7 == 0
        assert dt.date(2024, 7, 15) <= plan.plan_today <= dt.date(2024, 7, 21)
        assert plan.day("06-01").weekday() == PLAN_START.weekday()  # Saturday all-hands stay Saturdays


@pytest.mark.parametrize(
    "today",
    [
        dt.date(2025, 3, 3),
        dt.date(2025, 3, 5),
        dt.date(2025, 3, 9),
        dt.date(2024, 7, 15),
        dt.date(2030, 1, 1),
    ],
)
def test_milestones_before_today_are_done(today: dt.date) -> None:
    demo.load_demo(today=today)
    milestones = list(Milestone.objects.all())
    shift = plan_shift(today)
    assert Milestone.objects.get(title="Development window opens").date == PLAN_START + shift
    assert Milestone.objects.get(title="Development window ends").date == PLAN_END + shift
    past = [m for m in milestones if m.date < today]
    future = [m for m in milestones if m.date >= today]
    assert past and future
    assert [m.title for m in past if not m.done] == OVERDUE
    assert not any(m.done for m in future)
    # The overview has something this week or next, and the window spans today.
    monday = today - dt.timedelta(days=today.weekday())
    assert any(monday <= m.date < monday + dt.timedelta(days=14) for m in milestones)
    assert PLAN_START + shift < today < PLAN_END + shift


def test_dates_in_prose_move_with_the_plan(loaded: demo.DemoSummary) -> None:
    """Text never mentions the 2024 calendar: plan dates in prose are shifted, months are not named."""
    shift = plan_shift(PINNED)
    window = {(PLAN_START + shift + dt.timedelta(days=d)).strftime("%m-%d") for d in range(80)}
    prose = [
        *Subteam.objects.values_list("purpose", flat=True),
        *Subteam.objects.values_list("status_note", flat=True),
        *Member.objects.values_list("bio", flat=True),
        *Goal.objects.values_list("title", flat=True),
        *Goal.objects.values_list("target", flat=True),
        *GoalRevision.objects.values_list("reason", flat=True),
        *Milestone.objects.values_list("title", flat=True),
        *Milestone.objects.values_list("description", flat=True),
        *Task.objects.values_list("title", flat=True),
        *Task.objects.values_list("description", flat=True),
        *Task.objects.values_list("learnings", flat=True),
    ]
    mentioned = {d for text in prose for d in re.findall(r"\b\d\d-\d\d\b", text)}
    assert mentioned  # the check below looks at something
    assert mentioned <= window
    assert not [t for t in prose if "{" in t or re.search(r"\b(June|July|August)\b", t)]
    assert "08-12" not in Subteam.objects.get(slug="management").status_note  # PINNED moves it


def test_exactly_one_milestone_is_overdue_today() -> None:
    demo.load_demo()  # the real today
    overdue = [m.title for m in Milestone.objects.all() if m.is_overdue]
    assert overdue == OVERDUE
    done_tasks = Task.objects.filter(status=Task.Status.DONE)
    assert all(t.due_date is not None and t.due_date < timezone.localdate() for t in done_tasks)


def test_command_refuses_to_plant_known_passwords_with_debug_off(db: None) -> None:
    with pytest.raises(CommandError, match="known password"):
        call_command("load_demo", stdout=StringIO())
    assert not Member.objects.exists()


def test_command_loads_with_debug_off_when_forced(db: None) -> None:
    call_command("load_demo", "--force", "--today", PINNED.isoformat(), stdout=StringIO())
    assert Member.objects.count() == 45


# --- the data files --------------------------------------------------------------------------------------


def test_the_data_files_hold_the_whole_team() -> None:
    data = demo.read_team()
    demo.check(data)
    counts = {
        name: len(getattr(data, name)) for name in ("subteams", "people", "milestones", "goals", "tasks")
    }
    assert counts == {"subteams": 12, "people": 45, "milestones": 26, "goals": 20, "tasks": 81}
    assert sum(len(g.revisions) for g in data.goals) + len(data.goals) == 35
    assert len(OVERDUE) == 1


def test_check_refuses_a_task_outside_its_subteam() -> None:
    data = demo.read_team()
    stray = dataclasses.replace(data.tasks[0], assignees=("gozawa",))  # training code's lead
    with pytest.raises(ValueError, match="not in management"):
        demo.check(dataclasses.replace(data, tasks=(stray, *data.tasks[1:])))


def test_check_refuses_an_unknown_goal_author() -> None:
    data = demo.read_team()
    stray = dataclasses.replace(data.goals[0], author="nobody")
    with pytest.raises(ValueError, match="unknown authors"):
        demo.check(dataclasses.replace(data, goals=(stray, *data.goals[1:])))
