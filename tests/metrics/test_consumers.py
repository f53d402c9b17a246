"""Websockets through config.asgi: refusals close, members receive pushed points and states."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client

from config.asgi import application
from metrics.push import push_job
from scheduler import live
from scheduler.models import Job
from scheduler.transitions import transition
from tests.metrics.conftest import MakeJob
from tests.personas import Team

pytestmark = pytest.mark.django_db(transaction=True)


def headers(user: User | None) -> list[tuple[bytes, bytes]]:
    result = [(b"host", b"testserver"), (b"origin", b"http://testserver")]
    if user is not None:
        client = Client()
        client.force_login(user)
        cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
        result.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    return result


async def connect(path: str, user: User | None) -> tuple[WebsocketCommunicator, bool]:
    communicator = WebsocketCommunicator(application, path, headers=await sync_to_async(headers)(user))
    connected, _ = await communicator.connect(timeout=10)
    return communicator, connected


async def test_anonymous_users_are_closed(team: Team, make_job: MakeJob) -> None:
    job = await sync_to_async(make_job)()
    for path in (f"/ws/jobs/{job.pk}/", f"/ws/subteams/{team.sft.slug}/"):
        communicator, connected = await connect(path, None)
        assert not connected
        await communicator.disconnect()


async def test_unknown_jobs_and_subteams_are_closed(team: Team) -> None:
    member = team.users["member"]
    for path in ("/ws/jobs/00000000-0000-0000-0000-000000000000/", "/ws/subteams/nope/"):
        communicator, connected = await connect(path, member)
        assert not connected
        await communicator.disconnect()


def push_points(job: Job) -> None:
    with transaction.atomic():
        push_job(job, points={"train/loss": [(7, 1.5), (8, 1.25)]})


async def test_a_member_receives_points_on_the_job_and_subteam_sockets(team: Team, make_job: MakeJob) -> None:
    job = await sync_to_async(make_job)()
    on_job, ok_job = await connect(f"/ws/jobs/{job.pk}/", team.users["other"])
    on_team, ok_team = await connect(f"/ws/subteams/{team.sft.slug}/", team.users["member"])
    assert ok_job and ok_team

    await sync_to_async(push_points)(job)

    for communicator in (on_job, on_team):
        message: dict[str, Any] = await communicator.receive_json_from(timeout=10)
        assert message["job"] == str(job.pk)
        assert message["points"] == {"train/loss": [[7, 1.5], [8, 1.25]]}
        await communicator.disconnect()


async def test_a_state_change_is_pushed(team: Team, make_job: MakeJob) -> None:
    job = await sync_to_async(make_job)()
    communicator, connected = await connect(f"/ws/jobs/{job.pk}/", team.users["member"])
    assert connected

    def finish() -> None:
        assert transition(job, Job.State.COMPLETED, expect_from=Job.State.RUNNING)

    await sync_to_async(finish)()

    message = await communicator.receive_json_from(timeout=10)
    assert message["state"] == "completed"
    await communicator.disconnect()


async def test_nothing_is_pushed_when_the_transaction_rolls_back(team: Team, make_job: MakeJob) -> None:
    job = await sync_to_async(make_job)()
    communicator, connected = await connect(f"/ws/jobs/{job.pk}/", team.users["member"])
    assert connected

    def rolled_back() -> None:
        try:
            with transaction.atomic():
                push_job(job, points={"train/loss": [(1, 9.0)]})
                raise RuntimeError
        except RuntimeError:
            pass

    await sync_to_async(rolled_back)()

    assert await communicator.receive_nothing(timeout=0.5)
    await communicator.disconnect()


async def test_new_log_text_is_pushed(team: Team, make_job: MakeJob) -> None:
    job = await sync_to_async(make_job)()
    communicator, connected = await connect(f"/ws/jobs/{job.pk}/", team.users["member"])
    assert connected

    def log() -> None:
        with transaction.atomic():
            live.push(job.pk, job.subteam_id, log_text="step 10: loss 1.25\n", log_stream="stdout")

    await sync_to_async(log)()

    message = await communicator.receive_json_from(timeout=10)
    assert (message["log_text"], message["log_stream"]) == ("step 10: loss 1.25\n", "stdout")
    await communicator.disconnect()
