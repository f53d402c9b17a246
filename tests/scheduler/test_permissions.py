"""Every write view and API endpoint of the scheduler by every persona: the right status code, and on
refusal nothing changed (no job recorded, the job and cluster unchanged, no event added).

No real cluster is needed: the Cluster points at 127.0.0.1 port 1 and jobs stay `submitting` (no
worker runs here).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import paramiko
import pytest
from django.test import Client

from scheduler import services, ssh
from scheduler.models import Cluster, Job, JobEvent
from tests.personas import ROLES, Team, grant_cluster_accounts
from tests.scheduler.test_web import make_fake_cluster, submit


@pytest.fixture
def fake_cluster(team: Team) -> Cluster:
    cluster = make_fake_cluster()
    grant_cluster_accounts(team, cluster)
    return cluster


JSON = "application/json"


@dataclasses.dataclass
class Targets:
    cluster: Cluster
    job: Job  # the member's job in sft
    leads_job: Job  # the lead's job in sft: not the member's to cancel
    key_line: str  # a well-formed host key an admin may trust


@pytest.fixture
def targets(team: Team, fake_cluster: Cluster) -> Targets:
    return Targets(
        cluster=fake_cluster,
        job=submit(team, fake_cluster, "member", name="members-job"),
        leads_job=submit(team, fake_cluster, "lead", name="leads-job"),
        key_line=ssh.key_line(paramiko.ECDSAKey.generate()),
    )


def snapshot() -> dict[str, list[dict[str, Any]]]:
    """Every row the scheduler's writes touch."""
    return {
        "jobs": list(Job.objects.order_by("pk").values()),
        "events": list(JobEvent.objects.order_by("pk").values()),
        "clusters": list(Cluster.objects.order_by("pk").values()),
    }


def ok(code: int, *allowed: str, anon: int = 302) -> dict[str, int]:
    """`code` for the allowed roles, 403 for the other signed-in ones, `anon` for anonymous users."""
    return {role: code if role in allowed else anon if role == "anon" else 403 for role in ROLES}


def form(cluster: Cluster, **fields: Any) -> dict[str, Any]:
    data = {
        "subteam": "",
        "cluster": cluster.pk,
        "name": "sweep",
        "command": "python train.py",
        "nodes": 1,
        "gpus_per_node": 1,
        "time_limit_minutes": 30,
        "partition": "",
        "account": "",
    }
    data.update(fields)
    return data


@dataclasses.dataclass
class Write:
    call: Callable[[Client, Team, Targets], Any]
    expected: dict[str, int]
    changed: Callable[[dict[str, Any], dict[str, Any]], bool] | None = None  # for the allowed roles


def _added_jobs(n: int) -> Callable[[dict[str, Any], dict[str, Any]], bool]:
    return lambda before, after: len(after["jobs"]) == len(before["jobs"]) + n


def _cancelled(pk_of: Callable[[Targets], Job]) -> Callable[[Client, Team, Targets], Any]:
    return lambda c, team, t: c.post(f"/jobs/{pk_of(t).pk}/cancel/")


WRITES: dict[str, Write] = {
    "web submit": Write(
        lambda c, team, t: c.post("/jobs/new/", form(t.cluster, subteam=team.sft.pk)),
        ok(302, "admin", "lead", "member"),
        _added_jobs(1),
    ),
    "web submit chain": Write(
        lambda c, team, t: c.post(
            "/jobs/new/", form(t.cluster, subteam=team.sft.pk, then_command="python eval.py")
        ),
        ok(302, "admin", "lead", "member"),
        _added_jobs(2),
    ),
    "web preview": Write(  # writes nothing, but refuses the same people
        lambda c, team, t: c.post("/jobs/preview/", form(t.cluster, subteam=team.sft.pk)),
        ok(200, "admin", "lead", "member"),
        lambda before, after: before == after,
    ),
    "web cancel own job": Write(_cancelled(lambda t: t.job), ok(302, "admin", "lead", "member")),
    "web cancel lead's job": Write(_cancelled(lambda t: t.leads_job), ok(302, "admin", "lead")),
    "web resubmit": Write(
        lambda c, team, t: c.post(
            f"/jobs/{t.job.pk}/resubmit/", form(t.cluster, subteam=team.sft.pk, name="again")
        ),
        ok(302, "admin", "lead", "member"),
        _added_jobs(1),
    ),
    "web check host key": Write(
        # Port 1 refuses the connection: the admin is sent back to the cluster page with the error.
        lambda c, team, t: c.post(f"/clusters/{t.cluster.pk}/host-key/"),
        ok(302, "admin"),
        lambda before, after: before == after,
    ),
    "web trust host key": Write(
        lambda c, team, t: c.post(f"/clusters/{t.cluster.pk}/trust/", {"key_line": t.key_line}),
        ok(302, "admin"),
    ),
    "API create": Write(
        lambda c, team, t: c.post(
            "/api/v1/jobs/",
            {
                "subteam": "sft",
                "command": "python train.py",
                "nodes": 1,
                "gpus_per_node": 1,
                "time_limit": 30,
            },
            JSON,
        ),
        ok(201, "admin", "lead", "member", anon=401),
        _added_jobs(1),
    ),
    "API create chain": Write(
        lambda c, team, t: c.post(
            "/api/v1/jobs/",
            {"subteam": "sft", "command": "python train.py", "then": [{"command": "python eval.py"}]},
            JSON,
        ),
        ok(201, "admin", "lead", "member", anon=401),
        _added_jobs(2),
    ),
    "API cancel own job": Write(
        lambda c, team, t: c.post(f"/api/v1/jobs/{t.job.pk}/cancel/"),
        ok(200, "admin", "lead", "member", anon=401),
    ),
    "API cancel lead's job": Write(
        lambda c, team, t: c.post(f"/api/v1/jobs/{t.leads_job.pk}/cancel/"),
        ok(200, "admin", "lead", anon=401),
    ),
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", list(WRITES))
def test_write_permissions(team: Team, targets: Targets, role: str, name: str) -> None:
    write = WRITES[name]
    before = snapshot()
    job_before = Job.objects.get(pk=targets.job.pk)

    response = write.call(team.client(role), team, targets)

    after = snapshot()
    expected = write.expected[role]
    assert response.status_code == expected, (name, role, response.content[:1500])
    if expected in (302, 200, 201) and role != "anon":
        if write.changed is not None:
            assert write.changed(before, after), f"{name} by {role}"
        else:
            assert after != before, f"{name} by {role} changed nothing"
        return
    # Refused: nothing at all changed.
    assert after == before
    targets.job.refresh_from_db()
    assert targets.job.state == job_before.state == Job.State.SUBMITTING
    if role == "anon" and expected == 302:
        assert response["Location"].startswith("/accounts/login/")


def test_an_allowed_cancel_cancels_a_job_not_yet_on_the_cluster(team: Team, targets: Targets) -> None:
    events = JobEvent.objects.filter(job=targets.job).count()
    team.client("lead").post(f"/jobs/{targets.job.pk}/cancel/")
    targets.job.refresh_from_db()
    assert targets.job.state == Job.State.CANCELLED
    assert targets.job.cancel_requested_by == team.member("lead")
    assert JobEvent.objects.filter(job=targets.job).count() == events + 1


def test_an_admin_trusting_a_key_pins_it(team: Team, targets: Targets) -> None:
    team.client("admin").post(f"/clusters/{targets.cluster.pk}/trust/", {"key_line": targets.key_line})
    targets.cluster.refresh_from_db()
    assert targets.cluster.host_key == targets.key_line


def test_the_resubmit_form_is_refused_outside_the_jobs_subteam(team: Team, targets: Targets) -> None:
    assert team.client("other").get(f"/jobs/{targets.job.pk}/resubmit/").status_code == 403
    assert team.client("member").get(f"/jobs/{targets.job.pk}/resubmit/").status_code == 200


def test_another_subteams_member_cannot_submit_there_even_through_the_api_with_a_cluster_id(
    team: Team, targets: Targets
) -> None:
    response = team.client("other").post(
        "/api/v1/jobs/",
        {"subteam": "sft", "cluster": targets.cluster.pk, "command": "true", "time_limit": 5},
        JSON,
    )
    assert response.status_code == 403
    assert not Job.objects.filter(subteam=team.sft, owner=team.member("other")).exists()


def test_other_may_submit_for_its_own_subteam(team: Team, targets: Targets) -> None:
    response = team.client("other").post("/jobs/new/", form(targets.cluster, subteam=team.pretrain.pk))
    assert response.status_code == 302
    assert Job.objects.filter(subteam=team.pretrain, owner=team.member("other")).count() == 1


TRAINING_FORMS = {
    "training submit": ("/jobs/train/?kind=sft", 302),
    "training preview": ("/jobs/train/preview/", 200),
    "pipeline submit": ("/pipelines/new/", 302),
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", list(TRAINING_FORMS))
def test_the_training_and_pipeline_forms_refuse_those_outside_the_subteam(
    team: Team, targets: Targets, name: str, role: str
) -> None:
    from tests.scheduler.test_training_jobs import form_data, pipeline_data

    path, code = TRAINING_FORMS[name]
    data = pipeline_data(team, targets.cluster) if "pipeline" in name else form_data(team, targets.cluster)
    before = snapshot()
    response = team.client(role).post(path, data)
    expected = ok(code, "admin", "lead", "member")[role]
    assert response.status_code == expected, (name, role, response.content[:1500])
    if expected == 403 or role == "anon":
        assert snapshot() == before


def test_a_user_in_no_subteam_gets_no_submit_form(team: Team, targets: Targets) -> None:
    from tests.personas import make_user

    loner = make_user("loner")
    client = Client()
    client.force_login(loner)
    assert client.get("/jobs/new/").status_code == 403
    assert client.post("/jobs/new/", form(targets.cluster, subteam=team.sft.pk)).status_code == 403
    for path in ("/jobs/train/?kind=sft", "/pipelines/new/"):
        assert client.get(path).status_code == 403, path
    assert not Job.objects.filter(owner=loner.member).exists()


# --- anonymous users ------------------------------------------------------------------------------


def _read_urls(targets: Targets) -> list[str]:
    return [
        "/jobs/",
        "/jobs/new/",
        f"/jobs/{targets.job.pk}/",
        f"/jobs/{targets.job.pk}/resubmit/",
        f"/jobs/{targets.job.pk}/logs/stdout/",
        "/clusters/",
        f"/clusters/{targets.cluster.pk}/",
    ]


def test_anonymous_users_are_sent_to_sign_in(team: Team, targets: Targets) -> None:
    for url in _read_urls(targets):
        response = Client().get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/?next="), url


def test_anonymous_htmx_polls_get_401_and_a_redirect_header(team: Team, targets: Targets) -> None:
    response = Client().get(f"/jobs/{targets.job.pk}/", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response["HX-Redirect"].startswith("/accounts/login/")


@pytest.mark.parametrize(
    "url",
    ["/api/v1/jobs/", "/api/v1/clusters/", "job", "job-logs", "cluster"],
)
def test_the_api_answers_anonymous_users_401(team: Team, targets: Targets, url: str) -> None:
    url = {
        "job": f"/api/v1/jobs/{targets.job.pk}/",
        "job-logs": f"/api/v1/jobs/{targets.job.pk}/logs/",
        "cluster": f"/api/v1/clusters/{targets.cluster.pk}/",
    }.get(url, url)
    assert Client().get(url).status_code == 401


@pytest.mark.parametrize("role", ["admin", "lead", "member", "other"])
def test_every_signed_in_user_reads_every_page(team: Team, targets: Targets, role: str) -> None:
    client = team.client(role)
    for url in [u for u in _read_urls(targets) if "resubmit" not in u and "/new/" not in u]:
        assert client.get(url).status_code == 200, url
    for url in ["/api/v1/jobs/", f"/api/v1/jobs/{targets.job.pk}/", "/api/v1/clusters/"]:
        assert client.get(url).status_code == 200, url


@pytest.mark.parametrize("role", ["lead", "member", "other"])
def test_only_admins_see_the_host_key_buttons(team: Team, targets: Targets, role: str) -> None:
    body = team.client(role).get(f"/clusters/{targets.cluster.pk}/").content.decode()
    assert "Check host key" not in body
    assert "Check host key" in team.client("admin").get(f"/clusters/{targets.cluster.pk}/").content.decode()


def test_the_cancel_button_shows_only_to_who_may_cancel(team: Team, targets: Targets) -> None:
    url = f"/jobs/{targets.leads_job.pk}/"
    assert "Cancel job" in team.client("lead").get(url).content.decode()
    assert "Cancel job" in team.client("admin").get(url).content.decode()
    assert "Cancel job" not in team.client("member").get(url).content.decode()
    assert "Cancel job" not in team.client("other").get(url).content.decode()
    services.cancel_job(team.member("lead"), targets.leads_job)
    assert "Cancel job" not in team.client("lead").get(url).content.decode()


def test_csrf_is_enforced_on_cancel(team: Team, targets: Targets) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(team.users["member"])
    assert client.post(f"/jobs/{targets.job.pk}/cancel/").status_code == 403
    targets.job.refresh_from_db()
    assert targets.job.state == Job.State.SUBMITTING


# --- the admin --------------------------------------------------------------------------------------


def test_the_admin_shows_clusters_and_jobs_to_the_management_team(team: Team, targets: Targets) -> None:
    client = team.client("admin")
    for url in [
        "/admin/scheduler/cluster/",
        f"/admin/scheduler/cluster/{targets.cluster.pk}/change/",
        "/admin/scheduler/cluster/add/",
        "/admin/scheduler/job/",
        "/admin/scheduler/job/?state__exact=submitting",
        f"/admin/scheduler/job/{targets.job.pk}/change/",
    ]:
        assert client.get(url).status_code == 200, url
    assert client.get("/admin/scheduler/job/add/").status_code == 403
    page = client.get(f"/admin/scheduler/cluster/{targets.cluster.pk}/change/").content.decode()
    assert "node2" in page and "ECC errors on GPU 3" in page
    assert 'name="host_key"' not in page  # pinned on the cluster page, after checking the fingerprint


@pytest.mark.parametrize("role", ["lead", "member", "other"])
def test_the_admin_refuses_clusters_and_jobs_to_everyone_else(
    team: Team, targets: Targets, role: str
) -> None:
    client = team.client(role)
    for url in ["/admin/scheduler/cluster/", f"/admin/scheduler/job/{targets.job.pk}/change/"]:
        assert client.get(url, follow=True).status_code == 403, url
