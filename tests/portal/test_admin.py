"""The admin changes goals and memberships through `portal.services`, like the portal's pages: a goal's
edit needs a reason and leaves a revision; a membership is added, re-roled or ended, never deleted."""

from __future__ import annotations

import datetime as dt
from typing import Any

from portal.models import Goal, GoalRevision, Membership, Milestone, Task
from tests.personas import Team

NO_INLINE_ROWS = {"revisions-TOTAL_FORMS": 0, "revisions-INITIAL_FORMS": 0}


def goal_data(team: Team, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "title": "JMT-Bench 6.0",
        "target": "",
        "subteam": team.sft.pk,
        "metric_name": "jmt_bench.avg",
        "metric_comparison": ">=",
        "metric_target": "6.0",
        "metric_baseline": "",
        "metric_current": "",
        "start_date": "",
        "due_date": "2025-03-31",
        "status": "on_track",
        "reason": "",
        **NO_INLINE_ROWS,
    }
    data.update(changes)
    return data


def test_adding_a_goal_in_the_admin_records_its_creation(team: Team) -> None:
    response = team.client("admin").post(
        "/admin/portal/goal/add/", goal_data(team, reason="the spring target")
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    goal = Goal.objects.get()
    revision = goal.revisions.get()
    assert goal.created_by == team.member("admin")
    assert (revision.is_creation, revision.reason, revision.author) == (
        True,
        "the spring target",
        team.member("admin"),
    )


def test_a_goal_edit_in_the_admin_asks_why_and_leaves_a_revision(team: Team) -> None:
    client = team.client("admin")
    client.post("/admin/portal/goal/add/", goal_data(team))
    goal = Goal.objects.get()
    url = f"/admin/portal/goal/{goal.pk}/change/"
    assert 'name="reason"' in client.get(url).content.decode()

    refused = client.post(url, goal_data(team, metric_target="6.5"))
    assert refused.status_code == 200 and "This field is required" in refused.content.decode()
    goal.refresh_from_db()
    assert goal.metric_target == 6.0 and goal.revisions.count() == 1

    response = client.post(url, goal_data(team, metric_target="6.5", reason="the baseline moved"))
    assert response.status_code == 302
    goal.refresh_from_db()
    revision = goal.revisions.first()
    assert goal.metric_target == 6.5
    assert revision is not None and revision.changes == {"metric_target": [6.0, 6.5]}
    assert (revision.reason, revision.author) == ("the baseline moved", team.member("admin"))


def test_deleting_a_goal_in_the_admin(team: Team) -> None:
    client = team.client("admin")
    client.post("/admin/portal/goal/add/", goal_data(team))
    goal = Goal.objects.get()
    assert client.post(f"/admin/portal/goal/{goal.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not Goal.objects.exists() and not GoalRevision.objects.exists()


def test_a_membership_is_added_re_roled_and_ended_in_the_admin(team: Team) -> None:
    client = team.client("admin")
    other = team.member("other")
    response = client.post(
        "/admin/portal/membership/add/",
        {"member": other.pk, "subteam": team.sft.pk, "role": "member", "started": "2024-09-01"},
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    membership = Membership.objects.get(member=other, subteam=team.sft)
    url = f"/admin/portal/membership/{membership.pk}/change/"

    assert client.post(url, {"role": "lead", "ended": ""}).status_code == 302
    membership.refresh_from_db()
    assert (membership.role, membership.ended) == ("lead", None)

    early = client.post(url, {"role": "lead", "ended": "2024-08-01"})
    assert early.status_code == 200 and "cannot end before it started" in early.content.decode()
    assert client.post(url, {"role": "lead", "ended": "2024-12-31"}).status_code == 302
    membership.refresh_from_db()
    assert membership.ended == dt.date(2024, 12, 31)
    assert 'name="ended"' not in client.get(url).content.decode()  # ended: read-only from now on


def test_the_admin_keeps_one_active_membership_and_never_deletes_one(team: Team) -> None:
    client = team.client("admin")
    member = team.member("member")
    twice = client.post(
        "/admin/portal/membership/add/",
        {"member": member.pk, "subteam": team.sft.pk, "role": "member", "started": "2024-09-01"},
    )
    assert twice.status_code == 200
    assert Membership.objects.filter(member=member, subteam=team.sft).count() == 1
    membership = Membership.objects.get(member=member, subteam=team.sft)
    assert (
        client.post(f"/admin/portal/membership/{membership.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    assert Membership.objects.filter(pk=membership.pk).exists()


def test_a_members_page_in_the_admin_lists_their_memberships_read_only(team: Team) -> None:
    member = team.member("member")
    page = team.client("admin").get(f"/admin/portal/member/{member.pk}/change/").content.decode()
    assert "Fine-tuning" in page and 'name="memberships-0-role"' not in page


def test_tasks_and_milestones_in_the_admin(team: Team) -> None:
    client = team.client("admin")
    task = {"subteam": team.sft.pk, "title": "Clean the SFT set", "description": "", "status": "todo"}
    task |= {"priority": 2, "start_date": "", "due_date": "", "goal": "", "learnings": ""}
    assert (
        client.post("/admin/portal/task/add/", {**task, "assignees": [team.member("member").pk]}).status_code
        == 302
    )
    added = Task.objects.get()
    assert list(added.assignees.all()) == [team.member("member")] and added.created_by == team.member("admin")
    url = f"/admin/portal/task/{added.pk}/change/"
    assert client.post(url, {**task, "status": "doing", "assignees": []}).status_code == 302
    added.refresh_from_db()
    assert added.status == "doing" and not added.assignees.exists()
    assert client.post(f"/admin/portal/task/{added.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not Task.objects.exists()

    milestone = {"date": "2025-03-31", "title": "v1 release", "subteam": "", "description": ""}
    assert client.post("/admin/portal/milestone/add/", milestone).status_code == 302
    added_milestone = Milestone.objects.get()
    url = f"/admin/portal/milestone/{added_milestone.pk}/change/"
    assert client.post(url, {**milestone, "done": "on"}).status_code == 302
    added_milestone.refresh_from_db()
    assert added_milestone.done
