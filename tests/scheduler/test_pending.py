"""Why a job waits, without a cluster: the reason table, what the portal adds (booking, dependency,
drained nodes, a request the partition cannot hold), unknown codes shown verbatim, the estimate parser,
and the page, list, API and Slack showing it all."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from scheduler import pending, slurm
from scheduler.models import Cluster, Job, Partition
from tests.personas import Team, grant_cluster_accounts
from tests.scheduler.test_web import body, make_fake_cluster, submit


@pytest.fixture
def fake_cluster(team: Team) -> Cluster:
    cluster = make_fake_cluster()
    grant_cluster_accounts(team, cluster)
    return cluster


def waiting(job: Job, reason: str, **fields: Any) -> Job:
    """A job the worker has seen pending in squeue with this reason."""
    Job.objects.filter(pk=job.pk).update(state=Job.State.PENDING, reason=reason, slurm_job_id="77", **fields)
    job.refresh_from_db()
    return job


@pytest.mark.parametrize(
    ("reason", "words", "never"),
    [
        ("Resources", "Waiting for GPUs or nodes to free up.", False),
        ("Priority", "higher priority are ahead", False),
        ("DependencyNeverSatisfied", "will never start", True),
        ("ReqNodeNotAvail, UnavailableNodes:node2", "not available", False),
        ("AssocGrpGRES", "Slurm account is using all the GPUs", False),
        ("QOSMaxGRESPerUser", "your QOS allows one user", False),
        ("PartitionTimeLimit", "longer than the partition allows", True),
        ("JobHeldUser", "Held by its owner", False),
        ("BeginTime", "not to start before", False),
    ],
)
def test_reason_codes_in_words(reason: str, words: str, never: bool) -> None:
    text, known, is_never = pending.words(reason)
    assert words in text and known and is_never is never


def test_an_unknown_code_is_quoted_and_labelled_never_an_error(team: Team, fake_cluster: Cluster) -> None:
    text, known, never = pending.words("FrontEndDown_Or_Something_New")
    assert not known and not never and "FrontEndDown_Or_Something_New" in text
    job = waiting(submit(team, fake_cluster), "FrontEndDown_Or_Something_New")
    page = body(team.client("member").get(f"/jobs/{job.pk}/"))
    assert "FrontEndDown_Or_Something_New" in page and "unknown reason" in page


def test_a_dependency_names_the_step_waited_for(team: Team, fake_cluster: Cluster) -> None:
    first = submit(team, fake_cluster, name="prepare")
    Job.objects.filter(pk=first.pk).update(state=Job.State.RUNNING, pipeline_step=1)
    second = waiting(submit(team, fake_cluster), "Dependency", depends_on=first)
    found = pending.explain(second)
    assert (
        found is not None
        and found.detail == "It runs after step 1 of the pipeline, prepare, which is running."
    )
    assert found.link == f"/jobs/{first.pk}/" and not found.never
    Job.objects.filter(pk=first.pk).update(state=Job.State.FAILED)
    found = pending.explain(waiting(second, "DependencyNeverSatisfied"))
    assert found is not None and found.never and "which is failed" in found.detail


def test_drained_nodes_are_named_with_their_reason(team: Team, fake_cluster: Cluster) -> None:
    job = waiting(submit(team, fake_cluster), "ReqNodeNotAvail, UnavailableNodes:node[2-3]")
    found = pending.explain(job)
    assert found is not None and found.detail == "Unavailable: node2: drained (ECC errors on GPU 3)."


def test_more_nodes_than_the_partition_has_can_never_start(team: Team, fake_cluster: Cluster) -> None:
    job = waiting(submit(team, fake_cluster, nodes=2), "Resources")
    Partition.objects.filter(cluster=fake_cluster, name="gpu").update(total_nodes=1)  # a node was removed
    found = pending.explain(job)
    assert found is not None and found.never
    assert found.detail == "It asks for 2 nodes; partition gpu has 1."
    page = body(team.client("member").get(f"/jobs/{job.pk}/"))
    assert 'data-never="1"' in page and "Will never start as asked." in page and "Change and resubmit" in page


def test_inside_a_booking_the_jobs_that_hold_it_are_named(team: Team, fake_cluster: Cluster) -> None:
    now = timezone.now()
    holder = submit(team, fake_cluster, name="big-sft", gpus_per_node=8)
    Job.objects.filter(pk=holder.pk).update(
        state=Job.State.RUNNING, reservation="tanuki-12-abcdef", started_at=now, time_limit_minutes=90
    )
    job = waiting(submit(team, fake_cluster), "Resources", reservation="tanuki-12-abcdef")
    found = pending.explain(job)
    until = timezone.localtime(now + dt.timedelta(minutes=90)).strftime("%H:%M")
    assert found is not None and "big-sft" in found.detail and "(8 GPUs)" in found.detail
    assert f"~{until}" in found.detail and "tanuki-12-abcdef" in found.detail


def test_slurms_reservation_code_in_a_full_booking_names_its_holders(
    team: Team, fake_cluster: Cluster
) -> None:
    """Slurm says `Reservation` ("waiting for its reservation to become available") both before the
    booking starts and while the booking's GPUs are taken: with the subteam's jobs running in it, they
    are named, never "once the booking starts"."""
    job = waiting(submit(team, fake_cluster), "Reservation", reservation="tanuki-12-abcdef")
    found = pending.explain(job)
    assert found is not None and found.known
    assert (
        found.detail
        == "It will run in reservation tanuki-12-abcdef once the booking has started and has GPUs free."
    )
    holder = submit(team, fake_cluster, name="big-sft", gpus_per_node=8)
    Job.objects.filter(pk=holder.pk).update(
        state=Job.State.RUNNING,
        reservation="tanuki-12-abcdef",
        started_at=timezone.now(),
        time_limit_minutes=9,
    )
    found = pending.explain(job)
    assert found is not None and found.detail.startswith("Waiting inside reservation tanuki-12-abcdef")
    assert "big-sft" in found.detail and "(8 GPUs)" in found.detail


def test_the_estimate_shows_on_page_list_and_api(team: Team, fake_cluster: Cluster) -> None:
    at = timezone.now().replace(microsecond=0) + dt.timedelta(hours=2)
    job = waiting(submit(team, fake_cluster), "Priority", expected_start_at=at)
    local = timezone.localtime(at)
    page = body(team.client("member").get(f"/jobs/{job.pk}/"))
    assert f"~{local:%Y-%m-%d %H:%M}" in page and "Other jobs with a higher priority" in page
    listing = body(team.client("member").get("/jobs/"))
    assert (
        "Other jobs with a higher priority are ahead of it." in listing
        and f"start ~{local:%m-%d %H:%M}" in listing
    )
    api = APIClient()
    api.force_authenticate(team.users["member"])
    data = api.get(f"/api/v1/jobs/{job.pk}/").json()
    assert data["waiting"]["code"] == "Priority" and data["waiting"]["known"] is True
    assert dt.datetime.fromisoformat(data["waiting"]["expected_start"]) == at
    assert dt.datetime.fromisoformat(data["expected_start_at"].replace("Z", "+00:00")) == at


def test_the_jobs_list_asks_no_query_per_waiting_job(team: Team, fake_cluster: Cluster) -> None:
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert team.client("member").get("/jobs/").status_code == 200
        return len(queries)

    waiting(submit(team, fake_cluster), "Resources")
    one = count()
    for _ in range(9):
        waiting(submit(team, fake_cluster), "ReqNodeNotAvail, UnavailableNodes:node2")
    assert count() == one


@pytest.mark.parametrize(
    ("output", "start", "nodes"),
    [
        (
            "sbatch: Job 1234 to start at 2026-12-07T10:00:00 using 8 processors on nodes node1 in partition gpu",
            dt.datetime(2026, 12, 7, 10, 0, 0),
            "node1",
        ),
        (
            "sbatch: Job 99 to start at 1796637600 using 2 processors on nodes node[1-2] in partition gpu\n",
            dt.datetime.fromtimestamp(1796637600, tz=dt.UTC),
            "node[1-2]",
        ),
        ("sbatch: Job 5 to start at 1796637600", dt.datetime.fromtimestamp(1796637600, tz=dt.UTC), ""),
    ],
)
def test_test_only_output_is_parsed(output: str, start: dt.datetime, nodes: str) -> None:
    found = slurm.parse_test_only(output)
    assert found is not None and found.start == start and found.nodes == nodes


def test_test_only_refusal_is_not_an_estimate() -> None:
    assert slurm.parse_test_only("sbatch: error: Batch job submission failed: Invalid account") is None


def test_slack_job_says_why_it_waits(team: Team, fake_cluster: Cluster) -> None:
    from slackbot.commands import cmd_job

    at = timezone.now() + dt.timedelta(hours=1)
    job = waiting(submit(team, fake_cluster), "Resources", expected_start_at=at)
    reply = cmd_job(team.member("member"), [str(job.pk)])
    text = str(getattr(reply, "text", reply))
    assert "Waiting: Waiting for GPUs or nodes to free up." in text
    assert f"~{timezone.localtime(at):%m-%d %H:%M}" in text
