"""The drain guard (scheduler.drains): Slurm's drain reasons in words, the worker step that links a
drained or down node to the portal's jobs that were on it, its pages, its API and its Slack messages.

No real cluster: the Node rows are what the inventory would have stored, the jobs what tracking would
have stored. tests/scheduler/test_drains_on_cluster.py drains a node of the dev cluster.
"""

from __future__ import annotations

import datetime as dt
import itertools
import zoneinfo
from types import SimpleNamespace
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation

from scheduler import drains
from scheduler.models import Cluster, Job, Node, NodeIncident
from slackbot import outbox
from slackbot.models import Notification
from tests.personas import Team, grant_cluster_accounts
from tests.scheduler.test_web import body, make_fake_cluster, submit

pytestmark = pytest.mark.django_db

EVIL = "<script>alert(1)</script>"
_workers = itertools.count()


@pytest.fixture
def fake_cluster(team: Team) -> Cluster:
    cluster = make_fake_cluster()  # node1 in use, node2 drained for "ECC errors on GPU 3"
    grant_cluster_accounts(team, cluster)
    return cluster


def watch(cluster: Cluster) -> None:
    """One visit of the step, as a worker of its own would make it."""
    drains.watch_nodes(SimpleNamespace(cluster=cluster, worker=f"worker-{next(_workers)}"))


def on_node(
    team: Team,
    cluster: Cluster,
    node_list: str,
    *,
    state: str = Job.State.RUNNING,
    ended_ago: dt.timedelta | None = None,
    role: str = "member",
    **fields: Any,
) -> Job:
    """A job as tracking stores it: running on `node_list`, or ended there `ended_ago`."""
    job = submit(team, cluster, role=role, **fields)
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(
        state=state,
        node_list=node_list,
        slurm_job_id="4242",
        started_at=now - dt.timedelta(hours=2),
        ended_at=None if ended_ago is None else now - ended_ago,
    )
    job.refresh_from_db()
    return job


def drain(cluster: Cluster, name: str, state: str = "MIXED+DRAIN", reason: str = "Kill task failed") -> None:
    """What the inventory stores of a node Slurm drained (node3 is new to the fake inventory)."""
    Node.objects.update_or_create(
        cluster=cluster,
        name=name,
        defaults={"state": state, "reason": reason, "unavailable": True, "gpus_total": 8},
    )


def resume(cluster: Cluster, name: str) -> None:
    Node.objects.filter(cluster=cluster, name=name).update(state="IDLE", reason="", unavailable=False)


def open_incident(cluster: Cluster, node: str) -> NodeIncident:
    return NodeIncident.objects.get(cluster=cluster, node_name=node, resolved_at__isnull=True)


# --- the reason table --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        ("Kill task failed [root@2026-11-28T11:13:49]", "kill_task_failed"),
        ("Not responding [slurm@2026-11-28T11:14:08]", "not_responding"),
        ("batch job complete failure", "batch_job_complete_failure"),
        ("Epilog error", "epilog_error"),
        ("Prolog error", "prolog_error"),
        ("Low RealMemory (reported:1000 < 100.00% of configured:64000)", "low_memory"),
        ("Low socket*core*thread count, Low CPUs", "low_cpus"),
        ("gres/gpu count reported lower than configured (4 < 8)", "gpu_count"),
        ("NVML: GPU is lost", "nvml"),
        ("ECC errors on GPU 3", "ecc_errors"),
        ("Node unexpectedly rebooted boot_time=1 last response=2", "rebooted"),
    ],
)
def test_known_drain_reasons_say_what_happened_and_how_to_avoid_it(reason: str, code: str) -> None:
    why = drains.explain(reason)
    assert (why.code, why.known) == (code, True)
    assert why.what and why.avoid
    assert "[" not in why.reason


def test_kill_task_failed_names_sigterm_and_hung_storage() -> None:
    why = drains.explain("Kill task failed [root@2026-11-28T11:13:49]")
    assert (why.reason, why.set_by) == ("Kill task failed", "root")
    assert "UnkillableStepTimeout" in why.what and "NFS" in why.what
    assert "SIGTERM" in why.avoid and "srun" in why.avoid


def test_an_unknown_reason_is_shown_verbatim_as_unknown() -> None:
    why = drains.explain("disk check [tanuki@2026-11-28T11:13:49]")
    assert (why.code, why.known, why.reason, why.set_by, why.avoid) == (
        "unknown",
        False,
        "disk check",
        "tanuki",
        "",
    )
    assert "disk check" in why.what and "does not explain" in why.what
    assert drains.explain("").code == "" and drains.explain("").what == "Slurm gave no reason."


def test_the_reasons_are_in_japanese_too() -> None:
    for cause in drains.CAUSES:
        english = (str(cause.what), str(cause.avoid))
        with translation.override("ja"):
            assert (str(cause.what), str(cause.avoid)) != english, cause.code
    with translation.override("ja"):
        assert "SIGTERM" in drains.explain("Kill task failed").avoid


def test_slurms_time_of_the_reason_is_read_in_the_clusters_zone() -> None:
    tokyo = zoneinfo.ZoneInfo("Asia/Tokyo")
    assert drains.reason_time("Not responding [slurm@2026-11-28T11:14:08]", tokyo) == dt.datetime(
        2026, 11, 28, 11, 14, 8, tzinfo=tokyo
    )
    assert drains.reason_time("Not responding", tokyo) is None
    assert drains.reason_time("x [root@2026-13-40T99:00:00]", tokyo) is None


# --- the worker step -----------------------------------------------------------------------------------------


def test_a_drained_node_is_linked_to_the_jobs_that_were_on_it(team: Team, fake_cluster: Cluster) -> None:
    running = on_node(team, fake_cluster, "node[1-2]")
    just_ended = on_node(
        team, fake_cluster, "node1", state=Job.State.FAILED, ended_ago=dt.timedelta(minutes=10)
    )
    long_ago = on_node(
        team, fake_cluster, "node1", state=Job.State.COMPLETED, ended_ago=dt.timedelta(minutes=45)
    )
    elsewhere = on_node(team, fake_cluster, "node3")
    waiting = submit(team, fake_cluster)
    drain(fake_cluster, "node1")
    watch(fake_cluster)
    incident = open_incident(fake_cluster, "node1")
    assert (incident.state, incident.reason, incident.resolved_at) == (
        "MIXED+DRAIN",
        "Kill task failed",
        None,
    )
    assert set(incident.jobs.all()) == {running, just_ended}
    assert not {long_ago, elsewhere, waiting} & set(incident.jobs.all())
    # node2 was drained already (the fake inventory): an incident of its own, with the job on node[1-2].
    assert list(open_incident(fake_cluster, "node2").jobs.all()) == [running]


def test_the_window_is_a_setting(team: Team, fake_cluster: Cluster, settings: Any) -> None:
    settings.NODE_INCIDENT_WINDOW_MINUTES = 60
    long_ago = on_node(
        team, fake_cluster, "node1", state=Job.State.COMPLETED, ended_ago=dt.timedelta(minutes=45)
    )
    drain(fake_cluster, "node1")
    watch(fake_cluster)
    assert list(open_incident(fake_cluster, "node1").jobs.all()) == [long_ago]


def test_the_window_counts_back_from_slurms_time_of_the_drain(team: Team, fake_cluster: Cluster) -> None:
    Cluster.objects.filter(pk=fake_cluster.pk).update(time_zone="UTC")
    fake_cluster.refresh_from_db()
    drained_at = (timezone.now() - dt.timedelta(hours=3)).astimezone(dt.UTC).replace(microsecond=0)
    before = on_node(
        team, fake_cluster, "node1", state=Job.State.FAILED, ended_ago=dt.timedelta(hours=3, minutes=20)
    )
    on_node(team, fake_cluster, "node1", state=Job.State.FAILED, ended_ago=dt.timedelta(hours=4))
    drain(fake_cluster, "node1", reason=f"Kill task failed [root@{drained_at:%Y-%m-%dT%H:%M:%S}]")
    watch(fake_cluster)
    incident = open_incident(fake_cluster, "node1")
    assert incident.started_at == drained_at
    assert list(incident.jobs.all()) == [before]


def test_two_workers_record_one_incident(team: Team, fake_cluster: Cluster) -> None:
    job = on_node(team, fake_cluster, "node1")
    drain(fake_cluster, "node1")
    watch(fake_cluster)
    watch(fake_cluster)
    assert NodeIncident.objects.filter(cluster=fake_cluster, node_name="node1").count() == 1
    # Two workers that both saw no open incident: the second insert loses and records nothing.
    node = Node.objects.get(cluster=fake_cluster, name="node1")
    candidates = drains._candidates(fake_cluster, timezone.now() - dt.timedelta(hours=1))
    assert drains.record_incident(fake_cluster, node, timezone.now(), candidates) is None
    assert NodeIncident.objects.filter(cluster=fake_cluster, node_name="node1").count() == 1
    assert list(open_incident(fake_cluster, "node1").jobs.all()) == [job]


def test_an_incident_is_resolved_when_the_node_is_back_and_a_new_drain_is_a_new_one(
    team: Team, fake_cluster: Cluster
) -> None:
    drain(fake_cluster, "node1")
    watch(fake_cluster)
    first = open_incident(fake_cluster, "node1")
    resume(fake_cluster, "node1")
    watch(fake_cluster)
    first.refresh_from_db()
    assert first.resolved_at is not None
    assert open_incident(fake_cluster, "node2").resolved_at is None  # still drained
    drain(fake_cluster, "node1", state="DOWN+NOT_RESPONDING", reason="Not responding")
    watch(fake_cluster)
    second = open_incident(fake_cluster, "node1")
    assert second.pk != first.pk and second.reason == "Not responding"
    Node.objects.filter(cluster=fake_cluster, name="node1").delete()  # gone from the inventory
    watch(fake_cluster)
    second.refresh_from_db()
    assert second.resolved_at is not None


def test_the_jobs_of_an_incident_are_capped(team: Team, fake_cluster: Cluster) -> None:
    jobs = [on_node(team, fake_cluster, "node1") for _ in range(drains.MAX_JOBS + 3)]
    Job.objects.filter(pk=jobs[0].pk).update(node_list="node[1")  # unreadable: skipped, not an error
    drain(fake_cluster, "node1")
    watch(fake_cluster)
    incident = open_incident(fake_cluster, "node1")
    assert (incident.jobs.count(), incident.jobs_left_out) == (drains.MAX_JOBS, 2)


def test_the_step_costs_two_queries_when_nothing_changed(team: Team, fake_cluster: Cluster) -> None:
    watch(fake_cluster)  # node2's incident
    with CaptureQueriesContext(connection) as queries:
        watch(fake_cluster)
    assert len(queries) == 2


# --- pages -----------------------------------------------------------------------------------------------


def test_the_job_page_says_the_job_was_on_a_drained_node_and_how_to_avoid_it(
    team: Team, fake_cluster: Cluster
) -> None:
    job = on_node(team, fake_cluster, "node1")
    other = on_node(team, fake_cluster, "node3")
    drain(fake_cluster, "node1", reason="Kill task failed [root@2026-11-28T11:13:49]")
    watch(fake_cluster)
    page = body(team.client("member").get(f"/jobs/{job.pk}/"))
    assert 'data-node="node1" data-cause="kill_task_failed"' in page
    assert "Node node1 was taken out of service" in page
    assert "UnkillableStepTimeout" in page and "Handle SIGTERM" in page
    assert "Kill task failed [root@2026-11-28T11:13:49]" in page
    assert "node-incident" not in body(team.client("member").get(f"/jobs/{other.pk}/"))
    resume(fake_cluster, "node1")
    watch(fake_cluster)
    assert "back in service" in body(team.client("member").get(f"/jobs/{job.pk}/"))


def test_the_job_page_in_japanese(team: Team, fake_cluster: Cluster) -> None:
    job = on_node(team, fake_cluster, "node1")
    drain(fake_cluster, "node1")
    watch(fake_cluster)
    page = body(team.client("member", language="ja").get(f"/jobs/{job.pk}/"))
    with translation.override("ja"):
        assert drains.explain("Kill task failed").what in page
        assert str(translation.gettext("How to avoid it")) in page


def test_incidents_leave_the_job_pages_query_count_unchanged(team: Team, fake_cluster: Cluster) -> None:
    client = team.client("member")
    job = on_node(team, fake_cluster, "node[1-3]")
    client.get(f"/jobs/{job.pk}/")
    with CaptureQueriesContext(connection) as none:
        client.get(f"/jobs/{job.pk}/")
    drain(fake_cluster, "node1")
    drain(fake_cluster, "node3", state="DOWN", reason="Not responding")
    watch(fake_cluster)
    assert job.node_incidents.count() == 3
    with CaptureQueriesContext(connection) as three:
        page = body(client.get(f"/jobs/{job.pk}/"))
    assert page.count('class="panel diagnosis node-incident"') == 3
    assert len(none) == len(three), "\n".join(q["sql"][:160] for q in three.captured_queries)


def test_the_cluster_page_lists_incidents_with_their_jobs_and_owners(
    team: Team, fake_cluster: Cluster
) -> None:
    mine = on_node(team, fake_cluster, "node1", name="sweep-a")
    theirs = on_node(team, fake_cluster, "node1", role="other", subteam=team.pretrain, name="pretrain-b")
    drain(fake_cluster, "node1")
    watch(fake_cluster)
    client = team.client("member")
    page = body(client.get(f"/clusters/{fake_cluster.pk}/"))
    assert 'id="incidents"' in page
    assert 'data-node="node1" data-cause="kill_task_failed"' in page
    assert 'data-node="node2" data-cause="ecc_errors"' in page
    assert f'<a href="/jobs/{mine.pk}/">sweep-a</a>' in page
    assert f'<a href="/jobs/{theirs.pk}/">pretrain-b</a>' in page
    assert '<a href="/members/other/">Other</a>' in page and '<a href="/members/member/">Member</a>' in page
    assert "Handle SIGTERM" in page
    with CaptureQueriesContext(connection) as two:
        client.get(f"/clusters/{fake_cluster.pk}/")
    for _ in range(5):
        on_node(team, fake_cluster, "node3")
    drain(fake_cluster, "node3", state="DOWN", reason="Not responding")
    resume(fake_cluster, "node1")
    watch(fake_cluster)
    with CaptureQueriesContext(connection) as three:
        page = body(client.get(f"/clusters/{fake_cluster.pk}/"))
    assert "resolved" in page and 'data-cause="not_responding"' in page
    assert len(two) == len(three), "\n".join(q["sql"][:160] for q in three.captured_queries)


def test_reasons_and_names_are_escaped(team: Team, fake_cluster: Cluster) -> None:
    job = on_node(team, fake_cluster, "node1")
    Job.objects.filter(pk=job.pk).update(name=EVIL)
    drain(fake_cluster, "node1", reason=EVIL)
    watch(fake_cluster)
    for url in (f"/clusters/{fake_cluster.pk}/", f"/jobs/{job.pk}/"):
        page = body(team.client("member").get(url))
        assert EVIL not in page and "&lt;script&gt;" in page


# --- API -------------------------------------------------------------------------------------------------


def test_the_api_gives_a_clusters_incidents_and_a_jobs(team: Team, fake_cluster: Cluster) -> None:
    job = on_node(team, fake_cluster, "node1")
    drain(fake_cluster, "node1", reason="Kill task failed [root@2026-11-28T11:13:49]")
    watch(fake_cluster)
    client = team.client("member")
    data = client.get(f"/api/v1/clusters/{fake_cluster.pk}/").json()
    by_node = {i["node"]: i for i in data["incidents"]}
    assert set(by_node) == {"node1", "node2"}
    node1 = by_node["node1"]
    assert (node1["state"], node1["resolved_at"], node1["jobs_left_out"]) == ("MIXED+DRAIN", None, 0)
    assert node1["cause"]["code"] == "kill_task_failed" and node1["cause"]["set_by"] == "root"
    assert node1["jobs"] == [
        {"id": str(job.pk), "name": job.name, "owner": "member", "subteam": "sft", "state": "running"}
    ]
    assert "incidents" not in client.get("/api/v1/clusters/").json()["results"][0]
    detail = client.get(f"/api/v1/jobs/{job.pk}/").json()
    assert [i["node"] for i in detail["incidents"]] == ["node1"]
    assert detail["incidents"][0]["cause"]["known"] is True
    assert "incidents" not in client.get("/api/v1/jobs/").json()["results"][0]


# --- Slack ---------------------------------------------------------------------------------------------------


@pytest.fixture
def channels(team: Team, settings: Any) -> Team:
    settings.LANGUAGE_CODE = "en"
    settings.PORTAL_BASE_URL = "https://portal.example.org"
    team.management.slack_channel = "#admins"
    team.management.save()
    team.pretrain.slack_channel = "#pretrain"
    team.pretrain.save()
    return team


def test_admins_and_the_jobs_subteams_are_told_once(channels: Team, fake_cluster: Cluster) -> None:
    team = channels
    team.member("member").slack_user_id = "U0MEMBER"
    team.member("member").save()
    mine = on_node(team, fake_cluster, "node1", name="sweep-a")
    theirs = on_node(team, fake_cluster, "node1", role="other", subteam=team.pretrain, name="pretrain-b")
    Node.objects.filter(cluster=fake_cluster, name="node2").update(unavailable=False)  # only node1 goes out
    drain(fake_cluster, "node1")
    watch(fake_cluster)
    watch(fake_cluster)
    outbox.collect()
    outbox.collect()
    sent = {n.channel: n.text for n in Notification.objects.all()}
    assert set(sent) == {"#admins", "#sft", "#pretrain"}
    admins = sent["#admins"]
    assert admins.startswith("Node node1 on fake is out of service (MIXED+DRAIN): Kill task failed")
    assert "How to avoid it: Handle SIGTERM" in admins
    assert f"<https://portal.example.org/jobs/{mine.pk}/|sweep-a> (Member, Running)" in admins
    assert "|pretrain-b> (Other, Running)" in admins
    assert admins.endswith(f"https://portal.example.org/clusters/{fake_cluster.pk}/#incidents")
    # A subteam's channel hears of its own jobs, their owners mentioned.
    assert "<@U0MEMBER>" in sent["#sft"] and "pretrain-b" not in sent["#sft"]
    assert f"/jobs/{theirs.pk}/|pretrain-b> (Other, Running)" in sent["#pretrain"]
    assert "sweep-a" not in sent["#pretrain"]


def test_a_node_out_with_no_portal_job_is_told_to_the_admins_only(
    channels: Team, fake_cluster: Cluster
) -> None:
    watch(fake_cluster)  # node2, drained with nobody on it
    outbox.collect()
    (notification,) = Notification.objects.all()
    assert notification.channel == "#admins"
    assert (
        "ECC" in notification.text
        and "No portal job ran on it in the 30 minutes before." in notification.text
    )


def test_without_a_management_channel_only_the_subteams_are_told(
    channels: Team, fake_cluster: Cluster
) -> None:
    channels.management.slack_channel = ""
    channels.management.save()
    on_node(channels, fake_cluster, "node1")
    drain(fake_cluster, "node1", reason=EVIL)
    watch(fake_cluster)
    outbox.collect()
    (notification,) = Notification.objects.all()
    assert notification.channel == "#sft"
    assert EVIL not in notification.text and "&lt;script&gt;" in notification.text
