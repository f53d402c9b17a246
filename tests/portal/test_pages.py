"""Pages render what the team needs, escape what users type, and run a fixed number of queries."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from portal.models import Goal, GoalRevision, Member, Membership, Milestone, Subteam, Task
from tests.personas import Team, make_user

LIST_PAGES = [
    "/",
    "/subteams/",
    "/subteams/sft/",
    "/tasks/",
    "/tasks/?subteam=sft",
    "/goals/",
    "/timeline/",
    "/timeline/?scale=month",
    "/members/",
    "/learnings/",
    "/learnings/?q=lora",
    "/learnings/?q=学習率",
]


def add_rows(team: Team, n: int, tag: str) -> None:
    """n of everything a list page shows: members, memberships, tasks with assignees, goals, milestones."""
    today = timezone.localdate()
    for i in range(n):
        user = make_user(f"{tag}{i}")
        Membership.objects.create(member=user.member, subteam=team.sft, role="member", started=today)
        # A new subteam led by the new member, with a task and a goal: the per-subteam cards scale too.
        extra = Subteam.objects.create(name=f"{tag} team {i}", slug=f"{tag}-team-{i}")
        Membership.objects.create(member=user.member, subteam=extra, role="lead", started=today)
        Task.objects.create(subteam=extra, title=f"{tag} extra task {i}", status=Task.Status.BLOCKED)
        Goal.objects.create(subteam=extra, title=f"{tag} extra goal {i}", status=Goal.Status.AT_RISK)
        goal = Goal.objects.create(
            subteam=team.sft if i % 2 else None,
            title=f"{tag} goal {i}",
            start_date=today,
            due_date=today + dt.timedelta(days=7 * (i % 8)),
            metric_name="jmt_bench.avg",
            metric_target=7.8,
            metric_current=6.0,
        )
        GoalRevision.objects.create(
            goal=goal, changes={"status": ["on_track", "at_risk"]}, reason="late data"
        )
        task = Task.objects.create(
            subteam=team.sft,
            title=f"{tag} task {i}",
            status=Task.Status.values[i % 4],
            goal=goal,
            due_date=today,
            learnings=f"LoRA rank {i} was enough; 学習率 2e-5",
        )
        task.assignees.set([user.member, team.member("member")])
        Milestone.objects.create(subteam=team.sft if i % 2 else None, title=f"{tag} ms {i}", date=today)


@pytest.mark.parametrize("url", LIST_PAGES)
def test_list_pages_run_the_same_number_of_queries_for_1x_and_10x_data(team: Team, url: str) -> None:
    client = team.client("admin")
    add_rows(team, 1, "a")
    client.get(url)  # warm caches that are per-process, not per-request (content types, translations)
    with CaptureQueriesContext(connection) as one:
        assert client.get(url).status_code == 200
    add_rows(team, 9, "b")
    with CaptureQueriesContext(connection) as ten:
        assert client.get(url).status_code == 200
    assert len(one) == len(ten), "\n".join(q["sql"][:160] for q in ten.captured_queries)


def test_overview_shows_counts_goals_and_this_weeks_milestones(team: Team) -> None:
    today = timezone.localdate()
    Goal.objects.create(
        title="Top score on Japanese MT-Bench",
        metric_name="jmt_bench.avg",
        metric_target=7.8,
        metric_baseline=3.0,
        metric_current=7.0,
    )
    Milestone.objects.create(title="Final evaluation push", date=today)
    Milestone.objects.create(title="Far future", date=today + dt.timedelta(days=60))
    Task.objects.create(subteam=team.sft, title="Blocked on data", status=Task.Status.BLOCKED)
    response = team.client("member").get("/")
    body = response.content.decode()
    assert 'id="member-count">4<' in body
    assert "Top score on Japanese MT-Bench" in body
    assert "Final evaluation push" in body
    assert "Far future" not in body
    # progress from baseline 3.0 to target 7.8 at 7.0 is 83%
    assert 'aria-valuenow="83"' in body


def test_user_html_is_escaped_everywhere(team: Team) -> None:
    evil = "<script>alert(1)</script>"
    task = Task.objects.create(subteam=team.sft, title=evil, description=evil, learnings=evil)
    goal = Goal.objects.create(subteam=team.sft, title=evil, target=evil)
    Milestone.objects.create(title=evil, date=timezone.localdate())
    Member.objects.filter(user__username="member").update(display_name=evil)
    client = team.client("admin")
    for url in [
        "/",
        "/tasks/",
        f"/tasks/{task.pk}/",
        f"/goals/{goal.pk}/",
        "/goals/",
        "/timeline/",
        "/members/",
        "/members/member/",
        "/subteams/sft/",
    ]:
        body = client.get(url).content.decode()
        assert evil not in body, url
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in client.get(f"/tasks/{task.pk}/").content.decode()


@pytest.mark.parametrize(
    "url",
    [
        "/tasks/999999/",
        "/goals/999999/",
        "/members/nobody/",
        "/subteams/nope/",
        "/tasks/999999/edit/",
        "/goals/999999/edit/",
        "/milestones/999999/edit/",
    ],
)
def test_unknown_ids_give_404(team: Team, url: str) -> None:
    assert team.client("admin").get(url).status_code == 404


def test_onboarding_checklist_is_shown_to_management_and_self_only(team: Team) -> None:
    url = "/members/member/"
    assert 'id="onboarding"' in team.client("admin").get(url).content.decode()
    assert 'id="onboarding"' in team.client("member").get(url).content.decode()
    assert 'id="onboarding"' not in team.client("other").get(url).content.decode()
    assert 'id="onboarding"' not in team.client("lead").get(url).content.decode()


def test_member_directory_filters_incomplete_onboarding_for_admins(team: Team) -> None:
    Member.objects.exclude(user__username="member").update(
        has_cluster_account=True, has_github=True, has_huggingface=True, has_wandb=True, has_slack=True
    )
    body = team.client("admin").get("/members/?onboarding=incomplete").content.decode()
    assert "@member<" in body
    assert "@lead<" not in body


def test_member_directory_search_returns_only_rows_for_htmx(team: Team) -> None:
    response = team.client("admin").get("/members/?q=lea", HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert body.lstrip().startswith('<tbody id="member-rows">')
    assert "@lead<" in body and "@other<" not in body


def test_membership_history_is_kept_when_someone_moves(team: Team) -> None:
    membership = Membership.objects.get(member=team.member("member"), subteam=team.sft)
    client = team.client("lead")
    client.post(f"/memberships/{membership.pk}/end/")
    membership.refresh_from_db()
    assert membership.ended == timezone.localdate()
    admin = team.client("admin")
    admin.post("/subteams/pretrain/members/add/", {"member": team.member("member").pk, "role": "member"})
    rows = Membership.objects.filter(member=team.member("member")).order_by("started", "pk")
    assert [(m.subteam.slug, m.ended is None) for m in rows] == [("sft", False), ("pretrain", True)]
    body = admin.get("/members/member/").content.decode()
    assert "Fine-tuning" in body and "Pretraining data" in body


def test_adding_someone_already_in_the_subteam_says_so(team: Team) -> None:
    response = team.client("lead").post(
        "/subteams/sft/members/add/", {"member": team.member("member").pk, "role": "member"}, follow=True
    )
    assert "already in" in response.content.decode()
    assert Membership.objects.filter(member=team.member("member"), subteam=team.sft).count() == 1


def test_timeline_places_goals_and_milestones_on_the_week_grid(team: Team) -> None:
    Goal.objects.create(
        subteam=team.sft,
        title="SFT/DPO pipeline",
        start_date=dt.date(2024, 6, 3),
        due_date=dt.date(2024, 6, 23),
    )
    Milestone.objects.create(title="8B pretraining starts", date=dt.date(2024, 6, 21))
    body = team.client("member").get("/timeline/").content.decode()
    assert "SFT/DPO pipeline" in body
    assert "8B pretraining starts" in body
    # Where on the track each one sits is tested in test_timeline.py; here: each has a row of its own.
    assert body.count('class="lane"') == 2
