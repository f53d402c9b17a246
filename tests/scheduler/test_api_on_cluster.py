"""The REST API end to end on the real dev cluster, as a client script would use it (token auth)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.test import Client
from rest_framework.authtoken.models import Token

from scheduler.models import Cluster, Job
from tests.personas import Team


def api(team: Team) -> Client:
    token = Token.objects.create(user=team.users["member"])
    return Client(headers={"authorization": f"Token {token.key}"})


def submit(client: Client, **fields: Any) -> dict[str, Any]:
    payload = {"subteam": "sft", "kind": "custom", "nodes": 1, "gpus_per_node": 1, "time_limit": 10, **fields}
    response = client.post("/api/v1/jobs/", payload, content_type="application/json")
    assert response.status_code == 201, response.content
    return response.json()


def test_a_failing_job_a_cancelled_job_and_a_chain_through_the_api(
    team: Team, cluster: Cluster, run_until: Callable[..., None]
) -> None:
    client = api(team)
    failing = submit(client, command="echo hi; exit 3")
    sleeper = submit(client, command="sleep 300")
    chain = submit(client, command="echo first; sleep 2", then=[{"command": "echo second"}])
    second_id = chain["then"][0]["id"]

    def state(job_id: str) -> dict[str, Any]:
        return client.get(f"/api/v1/jobs/{job_id}/").json()

    run_until(
        lambda: state(sleeper["id"])["state"] == "running" and state(failing["id"])["state"] == "failed"
    )
    assert client.post(f"/api/v1/jobs/{sleeper['id']}/cancel/").status_code == 200
    run_until(
        lambda: all(Job.objects.get(pk=pk).is_terminal for pk in (sleeper["id"], chain["id"], second_id)),
        timeout=90,
    )

    failed = state(failing["id"])
    assert (failed["state"], failed["exit_code"]) == ("failed", 3)
    assert failed["slurm_job_id"].isdigit()
    logs = client.get(f"/api/v1/jobs/{failing['id']}/logs/?offset=0").json()
    assert logs["text"] == "hi\n"
    assert state(sleeper["id"])["state"] == "cancelled"

    first, second = Job.objects.get(pk=chain["id"]), Job.objects.get(pk=second_id)
    assert (first.state, second.state) == ("completed", "completed")
    assert first.ended_at is not None and second.started_at is not None
    assert second.started_at >= first.ended_at  # the second step ran after the first ended
