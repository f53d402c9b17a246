"""/api/v1/jobs/ and /api/v1/clusters/: submit (validation, chains, defaults), cancel, logs with
offsets, filters, a fixed number of queries, and the OpenAPI schema.

Who may write what is in test_permissions.py; here the personas act within their rights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

from scheduler.models import Cluster, Job, JobEvent, JobLogChunk
from tests.personas import Team, grant_cluster_accounts
from tests.scheduler.test_web import RUNS, add_jobs, finish, make_fake_cluster, submit


@pytest.fixture
def fake_cluster(team: Team) -> Cluster:
    cluster = make_fake_cluster()
    grant_cluster_accounts(team, cluster)
    return cluster


JSON = "application/json"
JOBS = "/api/v1/jobs/"


def payload(**fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "subteam": "sft",
        "kind": "custom",
        "name": "sweep",
        "command": "python train.py",
        "nodes": 1,
        "gpus_per_node": 2,
        "time_limit": 90,
    }
    data.update(fields)
    return {key: value for key, value in data.items() if value is not None}


def post(team: Team, data: dict[str, Any], role: str = "member") -> Any:
    return team.client(role).post(JOBS, data, JSON)


# --- submit -----------------------------------------------------------------------------------------


def test_a_member_submits_a_job(team: Team, fake_cluster: Cluster) -> None:
    response = post(team, payload())

    assert response.status_code == 201, response.content
    data = response.json()
    job = Job.objects.get()
    assert data["id"] == str(job.pk)
    assert response["Location"] == f"/api/v1/jobs/{job.pk}/"
    assert data["state"] == "submitting"
    assert data["slurm_job_id"] == ""
    assert data["exit_code"] is None
    assert (data["subteam"], data["owner"], data["cluster"]) == ("sft", "member", fake_cluster.pk)
    assert (data["partition"], data["account"], data["time_limit"], data["gpus"]) == ("gpu", "sft", 90, 2)
    assert data["then"] == []
    assert job.owner == team.member("member")
    assert job.time_limit_minutes == 90
    assert job.events.get().kind == JobEvent.Kind.SUBMITTED


def test_defaults_name_cluster_and_resources(team: Team, fake_cluster: Cluster) -> None:
    response = post(team, {"subteam": "sft", "command": "true"})
    assert response.status_code == 201, response.content
    job = Job.objects.get()
    assert job.name.startswith("custom-")
    assert (job.cluster, job.nodes, job.gpus_per_node, job.time_limit_minutes) == (fake_cluster, 1, 1, 60)


def test_a_chain_links_each_step_to_the_one_before(team: Team, fake_cluster: Cluster) -> None:
    response = post(
        team,
        payload(
            then=[
                {"command": "python eval.py"},
                {"command": "python export.py", "name": "export", "gpus_per_node": 1, "time_limit": 20},
            ]
        ),
    )

    assert response.status_code == 201, response.content
    data = response.json()
    first = Job.objects.get(pk=data["id"])
    second, third = (Job.objects.get(pk=step["id"]) for step in data["then"])
    assert second.depends_on == first and third.depends_on == second
    assert first.depends_on is None
    assert [second.name, third.name] == ["sweep-2", "export"]
    assert (second.gpus_per_node, second.time_limit_minutes) == (2, 90)
    assert (third.gpus_per_node, third.time_limit_minutes) == (1, 20)
    assert data["then"][0]["depends_on"] == data["id"]
    assert Job.objects.count() == 3


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"cluster": 999999}, "cluster", "Invalid pk"),
        ({"gpus_per_node": 0}, "gpus_per_node", "at least one GPU"),
        ({"gpus_per_node": 9}, "gpus_per_node", "Between 1 and 8 GPUs per node."),
        ({"nodes": 0}, "nodes", "Between 1 and 64 nodes."),
        ({"time_limit": 24 * 60 + 1}, "time_limit", "at most 1440 minutes"),
        ({"time_limit": 0}, "time_limit", "At least one minute."),
        ({"name": "x; reboot"}, "name", "Use 1-64 letters"),
        ({"name": "a`id`"}, "name", "Use 1-64 letters"),
        ({"partition": "gpu && ls"}, "partition", "Only letters, digits"),
        ({"partition": "$(id)"}, "partition", "Only letters, digits"),
        ({"partition": "nosuch"}, "partition", "The cluster has no partition nosuch."),
        ({"command": "echo a\u0000b"}, "command", "NUL"),
        ({"command": "python x.py\n  #SBATCH --gres=gpu:8"}, "command", "#SBATCH lines are not allowed"),
        ({"command": ""}, "command", "Say what the job runs"),
        ({"kind": "nosuch"}, "kind", "is not a valid choice"),
        ({"subteam": "nosuch"}, "subteam", "There is no subteam"),
        ({"nodes": "many"}, "nodes", "A valid integer is required."),
    ],
)
def test_invalid_requests_are_400_with_field_errors_and_record_nothing(
    team: Team, fake_cluster: Cluster, fields: dict[str, Any], field: str, message: str
) -> None:
    response = post(team, payload(**fields))

    assert response.status_code == 400, response.content
    errors = response.json()
    assert field in errors, errors
    assert any(message.lower() in e.lower() for e in errors[field]), errors
    assert not Job.objects.exists()
    assert not JobEvent.objects.exists()


def test_an_invalid_later_step_is_reported_under_then_and_nothing_is_recorded(
    team: Team, fake_cluster: Cluster
) -> None:
    response = post(
        team,
        payload(then=[{"command": "python eval.py"}, {"command": "#SBATCH -N 4\nrun", "time_limit": 5000}]),
    )
    assert response.status_code == 400
    errors = response.json()["then"]
    assert errors[0] == {}
    assert "#SBATCH lines are not allowed" in errors[1]["command"][0]
    assert "at most 1440 minutes" in errors[1]["time_limit"][0]
    assert not Job.objects.exists()


def test_an_inactive_cluster_is_refused(team: Team, fake_cluster: Cluster) -> None:
    old = Cluster.objects.create(name="old", host="h", username="u", work_dir=RUNS, is_active=False)
    response = post(team, payload(cluster=old.pk))
    assert response.status_code == 400
    assert response.json()["cluster"] == ["This cluster is not active."]


def test_the_cluster_is_required_when_several_are_active(team: Team, fake_cluster: Cluster) -> None:
    second = Cluster.objects.create(name="second", host="h", username="u", work_dir=RUNS)
    grant_cluster_accounts(team, second)
    response = post(team, payload())
    assert response.status_code == 400
    assert "more than one is active" in response.json()["cluster"][0]
    assert post(team, payload(cluster=second.pk)).status_code == 201


def test_without_a_cluster_submitting_says_so(team: Team) -> None:
    response = post(team, payload())
    assert response.status_code == 400
    assert response.json()["cluster"] == ["No cluster is configured."]


def test_token_authentication_works(team: Team, fake_cluster: Cluster) -> None:
    from django.test import Client

    token = Token.objects.create(user=team.users["member"])
    client = Client(headers={"authorization": f"Token {token.key}"})
    assert client.post(JOBS, payload(), JSON).status_code == 201
    assert client.get(JOBS).json()["count"] == 1


# --- cancel -----------------------------------------------------------------------------------------


def test_cancelling_a_job_not_yet_sent_cancels_it_at_once(team: Team, fake_cluster: Cluster) -> None:
    data = post(team, payload(then=[{"command": "python eval.py"}])).json()

    response = team.client("member").post(f"{JOBS}{data['id']}/cancel/")

    assert response.status_code == 200
    assert response.json()["state"] == "cancelled"
    assert response.json()["is_terminal"] is True
    follower = Job.objects.get(pk=data["then"][0]["id"])
    assert follower.state == Job.State.CANCELLED  # it could never run


def test_cancelling_a_running_job_asks_the_worker(team: Team, fake_cluster: Cluster) -> None:
    job = submit(team, fake_cluster)
    Job.objects.filter(pk=job.pk).update(
        state=Job.State.RUNNING, slurm_job_id="9", submit_attempted_at=job.created_at
    )
    response = team.client("lead").post(f"{JOBS}{job.pk}/cancel/")
    assert response.status_code == 200
    data = response.json()
    assert data["state"] == "running"
    assert data["cancel_requested_at"] is not None
    assert job.events.filter(kind=JobEvent.Kind.CANCEL_REQUESTED, actor=team.member("lead")).exists()


def test_cancelling_a_finished_job_changes_nothing(team: Team, fake_cluster: Cluster) -> None:
    job = finish(submit(team, fake_cluster), Job.State.FAILED, 3)
    response = team.client("member").post(f"{JOBS}{job.pk}/cancel/")
    assert response.status_code == 200
    assert (response.json()["state"], response.json()["exit_code"]) == ("failed", 3)
    assert job.events.count() == 1


def test_unknown_jobs_are_404(team: Team, fake_cluster: Cluster) -> None:
    client = team.client("admin")
    assert client.get(f"{JOBS}00000000-0000-0000-0000-000000000000/").status_code == 404
    assert client.post(f"{JOBS}00000000-0000-0000-0000-000000000000/cancel/").status_code == 404
    assert client.get(f"{JOBS}not-a-uuid/").status_code == 404


# --- logs -------------------------------------------------------------------------------------------


def test_logs_are_read_from_an_offset(team: Team, fake_cluster: Cluster) -> None:
    job = submit(team, fake_cluster)
    JobLogChunk.objects.create(job=job, stream="stdout", offset=0, data=(b"hello\n"), size=6)
    JobLogChunk.objects.create(job=job, stream="stdout", offset=6, data=("ütf\n").encode(), size=5)
    JobLogChunk.objects.create(job=job, stream="stderr", offset=0, data=(b"warn\n"), size=5)
    Job.objects.filter(pk=job.pk).update(stdout_offset=11, stderr_offset=5)
    client = team.client("other")
    url = f"{JOBS}{job.pk}/logs/"

    whole = client.get(url).json()
    assert whole == {
        "stream": "stdout",
        "offset": 0,
        "text": "hello\nütf\n",
        "next_offset": 11,
        "final": False,
    }
    assert client.get(f"{url}?offset=6").json()["text"] == "ütf\n"
    assert client.get(f"{url}?offset=3").json()["text"] == "lo\nütf\n"
    rest = client.get(f"{url}?offset=11").json()
    assert (rest["text"], rest["next_offset"]) == ("", 11)
    assert client.get(f"{url}?stream=stderr").json()["text"] == "warn\n"

    JobLogChunk.objects.create(job=job, stream="stdout", offset=11, data=(b"more\n"), size=5)
    finish(job, Job.State.COMPLETED, 0, stdout_offset=16, logs_final=True)
    last = client.get(f"{url}?offset=11").json()
    assert (last["text"], last["next_offset"], last["final"]) == ("more\n", 16, True)
    assert client.get(f"{url}?offset=0").json()["final"] is True


@pytest.mark.parametrize("query", ["?stream=both", "?offset=-1", "?offset=abc"])
def test_bad_log_queries_are_400(team: Team, fake_cluster: Cluster, query: str) -> None:
    job = submit(team, fake_cluster)
    assert team.client("member").get(f"{JOBS}{job.pk}/logs/{query}").status_code == 400


# --- reads ------------------------------------------------------------------------------------------


def test_the_list_filters_by_subteam_state_owner_and_cluster(team: Team, fake_cluster: Cluster) -> None:
    second = Cluster.objects.create(name="second", host="h", username="u", work_dir=RUNS)
    grant_cluster_accounts(team, second)
    submit(team, fake_cluster, "member", name="mine")
    finish(submit(team, fake_cluster, "lead", name="leads"), Job.State.COMPLETED, 0)
    submit(team, second, "other", name="theirs", subteam=team.pretrain)
    client = team.client("member")

    def names(query: str) -> set[str]:
        response = client.get(f"{JOBS}{query}")
        assert response.status_code == 200, response.content
        return {row["name"] for row in response.json()["results"]}

    assert names("") == {"mine", "leads", "theirs"}
    assert names("?subteam=sft") == {"mine", "leads"}
    assert names("?state=completed") == {"leads"}
    assert names("?state=submitting&subteam=sft") == {"mine"}
    assert names("?owner=other") == {"theirs"}
    assert names(f"?cluster={second.pk}") == {"theirs"}
    assert client.get(f"{JOBS}?subteam=nosuch").status_code == 400
    assert client.get(f"{JOBS}?owner=nobody").status_code == 400
    assert client.get(f"{JOBS}?cluster=999").status_code == 400
    assert client.get(f"{JOBS}?state=weird").status_code == 400


def test_a_job_reads_with_its_script_and_timeline(team: Team, fake_cluster: Cluster) -> None:
    job = submit(team, fake_cluster, name="detail")
    data = team.client("other").get(f"{JOBS}{job.pk}/").json()
    assert data["script"].startswith("#!/bin/bash\n#SBATCH --job-name=tanuki-")
    assert data["events"] == [
        {
            "at": data["events"][0]["at"],
            "kind": "submitted",
            "actor": "member",
            "from_state": "",
            "to_state": "submitting",
            "message": "",
        }
    ]
    assert "script" not in team.client("other").get(JOBS).json()["results"][0]


def test_clusters_read_with_partitions_and_nodes(team: Team, fake_cluster: Cluster) -> None:
    client = team.client("member")
    rows = client.get("/api/v1/clusters/").json()["results"]
    assert [row["name"] for row in rows] == ["fake"]
    data = client.get(f"/api/v1/clusters/{fake_cluster.pk}/").json()
    assert data["status"] == "reachable"
    assert [p["name"] for p in data["partitions"]] == ["debug", "gpu"]
    node2 = next(n for n in data["nodes"] if n["name"] == "node2")
    assert (node2["unavailable"], node2["reason"], node2["gpus_free"]) == (True, "ECC errors on GPU 3", 0)
    assert "key_path" not in data and "host_key" not in data
    assert client.post("/api/v1/clusters/", {"name": "x"}, JSON).status_code == 405
    assert client.delete(f"/api/v1/clusters/{fake_cluster.pk}/").status_code == 405


def test_jobs_cannot_be_changed_or_deleted_through_the_api(team: Team, fake_cluster: Cluster) -> None:
    job = submit(team, fake_cluster)
    client = team.client("admin")
    assert client.patch(f"{JOBS}{job.pk}/", {"state": "completed"}, JSON).status_code == 405
    assert client.delete(f"{JOBS}{job.pk}/").status_code == 405
    job.refresh_from_db()
    assert job.state == Job.State.SUBMITTING


@pytest.mark.parametrize("url", [JOBS, f"{JOBS}?subteam=sft&state=failed", "/api/v1/clusters/"])
def test_lists_run_the_same_number_of_queries_for_1x_and_10x_rows(
    team: Team, fake_cluster: Cluster, url: str
) -> None:
    client = team.client("member")
    add_jobs(team, fake_cluster, 1)
    client.get(url)
    with CaptureQueriesContext(connection) as one:
        assert client.get(url).status_code == 200
    add_jobs(team, fake_cluster, 9)
    for i in range(9):
        Cluster.objects.create(name=f"extra{i}", host="h", username="u", work_dir=RUNS)
    with CaptureQueriesContext(connection) as ten:
        assert client.get(url).status_code == 200
    assert len(one) == len(ten), "\n".join(q["sql"][:160] for q in ten.captured_queries)


def test_the_schema_stays_valid_and_documents_jobs(tmp_path: Path, db: None) -> None:
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = out.read_text()
    for path in [
        "/api/v1/jobs/:",
        "/api/v1/jobs/{id}/cancel/:",
        "/api/v1/jobs/{id}/logs/:",
        "/api/v1/clusters/{id}/:",
    ]:
        assert path in schema
