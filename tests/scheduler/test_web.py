"""The jobs and clusters pages: the submit form (validation, preview, chains), a job's page (logs,
timeline, polling), cancel, resubmit, the list's filters and its fixed number of queries, escaping.

No real cluster (except the host-key check at the end): a Cluster row pointing at 127.0.0.1 port 1,
and jobs that stay `submitting` unless a test sets what the worker would have stored.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from scheduler import services
from scheduler.models import Cluster, Job, JobEvent, JobLogChunk, Node, Partition
from tests.personas import Team, grant_cluster_accounts

EVIL = "<script>alert(1)</script>"
RUNS = "/scratch/tanuki/runs"  # only written into scripts: no worker runs in these tests
_serial = itertools.count()


def make_fake_cluster() -> Cluster:
    """A cluster nobody can reach, with the inventory the worker would have read: one drained node."""
    cluster = Cluster.objects.create(
        name="fake",
        host="127.0.0.1",
        port=1,
        username="tanuki",
        key_path="/nonexistent/id_ed25519",
        default_partition="gpu",
        default_account="sft",
        work_dir=RUNS,
        status=Cluster.Status.REACHABLE,
        last_contact_at=timezone.now(),
    )
    Partition.objects.create(
        cluster=cluster, name="gpu", is_default=True, max_time_minutes=24 * 60, total_nodes=2, state="UP"
    )
    Partition.objects.create(cluster=cluster, name="debug", max_time_minutes=30, total_nodes=1, state="UP")
    Node.objects.create(
        cluster=cluster,
        name="node1",
        state="MIXED",
        gpus_total=8,
        gpus_alloc=2,
        cpus_total=64,
        partitions="gpu",
    )
    Node.objects.create(
        cluster=cluster,
        name="node2",
        state="DRAINED",
        reason="ECC errors on GPU 3",
        gpus_total=8,
        cpus_total=64,
        partitions="gpu,debug",
        unavailable=True,
    )
    return cluster


@pytest.fixture
def fake_cluster(team: Team) -> Cluster:
    cluster = make_fake_cluster()
    grant_cluster_accounts(team, cluster)
    return cluster


def submit(team: Team, cluster: Cluster, role: str = "member", **fields: Any) -> Job:
    """A job recorded through the service, as the form and the API record it."""
    fields.setdefault("name", f"job-{next(_serial)}")
    fields.setdefault("command", "python train.py")
    fields.setdefault("gpus_per_node", 1)
    subteam = fields.pop("subteam", team.sft)
    spec = services.JobSpec(subteam=subteam, cluster=cluster, **fields)
    return services.submit_job(team.member(role), spec)


def finish(job: Job, state: str, exit_code: int | None = None, **fields: Any) -> Job:
    """What the worker stores once Slurm reports the job ended."""
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(
        state=state,
        exit_code=exit_code,
        slurm_job_id=fields.pop("slurm_job_id", "4242"),
        submitted_at=now - dt.timedelta(minutes=10),
        started_at=now - dt.timedelta(minutes=9),
        ended_at=now,
        submit_attempted_at=now - dt.timedelta(minutes=10),
        **fields,
    )
    job.refresh_from_db()
    return job


def form(cluster: Cluster, subteam: Any, **fields: Any) -> dict[str, Any]:
    data = {
        "subteam": subteam.pk,
        "cluster": cluster.pk,
        "name": "sweep",
        "command": "python train.py --lr 1e-4",
        "nodes": 1,
        "gpus_per_node": 2,
        "time_limit_minutes": 60,
        "partition": "",
        "account": "",
        "then_command": "",
    }
    data.update(fields)
    return data


def body(response: Any) -> str:
    return response.content.decode()


# --- submit ---------------------------------------------------------------------------------------


def test_a_member_submits_a_job_from_the_form(team: Team, fake_cluster: Cluster) -> None:
    client = team.client("member")
    page = client.get("/jobs/new/?subteam=sft")
    assert page.status_code == 200
    assert 'value="1" selected' in body(page) or "selected" in body(page)

    response = client.post("/jobs/new/", form(fake_cluster, team.sft))

    job = Job.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/jobs/{job.pk}/"
    assert (job.owner, job.subteam, job.cluster) == (team.member("member"), team.sft, fake_cluster)
    assert (job.partition, job.account, job.gpus, job.state) == ("gpu", "sft", 2, Job.State.SUBMITTING)
    assert "#SBATCH --gres=gpu:2" in job.script
    assert list(job.events.values_list("kind", flat=True)) == [JobEvent.Kind.SUBMITTED]


def test_the_only_active_cluster_is_chosen_for_you(team: Team, fake_cluster: Cluster) -> None:
    page = body(team.client("member").get("/jobs/new/"))
    assert f'<option value="{fake_cluster.pk}" selected>' in page


def test_a_second_command_submits_a_chain(team: Team, fake_cluster: Cluster) -> None:
    response = team.client("member").post(
        "/jobs/new/", form(fake_cluster, team.sft, then_command="python eval.py")
    )
    first, second = Job.objects.order_by("created_at")
    assert response["Location"] == f"/jobs/{first.pk}/"
    assert second.depends_on == first
    assert (second.name, second.command) == ("sweep-2", "python eval.py")
    assert second.gpus_per_node == first.gpus_per_node == 2
    assert "#SBATCH --kill-on-invalid-dep=yes" in second.script
    page = body(team.client("member").get(f"/jobs/{first.pk}/"))
    assert 'id="chain"' in page
    assert f'href="/jobs/{second.pk}/"' in page


def test_a_job_without_a_name_gets_one(team: Team, fake_cluster: Cluster) -> None:
    team.client("member").post("/jobs/new/", form(fake_cluster, team.sft, name=""))
    assert Job.objects.get().name.startswith("custom-")


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"name": "a; rm -rf /"}, "name", "Use 1-64 letters"),
        ({"name": "$(reboot)"}, "name", "Use 1-64 letters"),
        ({"partition": "gpu;ls"}, "partition", "Only letters, digits"),
        ({"partition": "nosuch"}, "partition", "The cluster has no partition nosuch."),
        ({"account": "a b"}, "account", "Only letters, digits"),
        ({"command": "#SBATCH --gres=gpu:8\npython x.py"}, "command", "#SBATCH lines are not allowed"),
        ({"command": "echo a\x00b"}, "command", "NUL"),
        ({"command": "   "}, "command", "Say what the job runs."),
        ({"gpus_per_node": 0}, "gpus_per_node", "at least one GPU"),
        ({"gpus_per_node": 9}, "gpus_per_node", "Between 1 and 8 GPUs per node."),
        ({"nodes": 0}, "nodes", "Between 1 and 64 nodes."),
        ({"nodes": 3}, "nodes", "The partition has only 2 nodes."),
        ({"time_limit_minutes": 24 * 60 + 1}, "time_limit_minutes", "at most 1440 minutes"),
        ({"partition": "debug", "time_limit_minutes": 31}, "time_limit_minutes", "at most 30 minutes"),
        ({"time_limit_minutes": 0}, "time_limit_minutes", "At least one minute."),
        ({"then_command": "#SBATCH -N 9"}, "then_command", "#SBATCH lines are not allowed"),
    ],
)
def test_invalid_requests_show_the_services_errors_on_their_fields(
    team: Team, fake_cluster: Cluster, fields: dict[str, Any], field: str, message: str
) -> None:
    response = team.client("member").post("/jobs/new/", form(fake_cluster, team.sft, **fields))

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors, errors
    assert any(message.lower() in e.lower() for e in errors[field]), errors[field]
    assert not Job.objects.exists()
    assert not JobEvent.objects.exists()


def test_an_inactive_cluster_is_not_offered(team: Team, fake_cluster: Cluster) -> None:
    Cluster.objects.create(name="old", host="h", username="u", work_dir=RUNS, is_active=False)
    page = body(team.client("member").get("/jobs/new/"))
    assert ">old<" not in page
    old = Cluster.objects.get(name="old")
    response = team.client("member").post("/jobs/new/", form(old, team.sft))
    assert "cluster" in response.context["form"].errors
    assert not Job.objects.exists()


def test_the_preview_shows_the_script_and_records_nothing(team: Team, fake_cluster: Cluster) -> None:
    client = team.client("member")
    data = form(fake_cluster, team.sft, then_command="python eval.py")

    fragment = client.post("/jobs/preview/", data, headers={"HX-Request": "true"})
    plain = client.post("/jobs/preview/", data)

    assert fragment.status_code == plain.status_code == 200
    html = body(fragment)
    assert html.lstrip().startswith('<section class="panel" id="preview"')
    assert "<html" not in html
    assert "#SBATCH --partition=gpu" in html
    assert "#SBATCH --gres=gpu:2" in html
    assert "python train.py --lr 1e-4" in html
    assert "Then, only if sweep succeeds:" in html
    assert "#SBATCH --kill-on-invalid-dep=yes" in html
    assert "<html" in body(plain) and "#SBATCH --partition=gpu" in body(plain)
    assert not Job.objects.exists()


def test_the_preview_lists_errors_instead_of_a_script(team: Team, fake_cluster: Cluster) -> None:
    response = team.client("member").post(
        "/jobs/preview/", form(fake_cluster, team.sft, name="bad name"), headers={"HX-Request": "true"}
    )
    html = body(response)
    assert "Fix these first" in html
    assert "#SBATCH" not in html


def test_without_a_cluster_the_form_says_so(team: Team) -> None:
    admin_page = body(team.client("admin").get("/jobs/new/"))
    member_page = body(team.client("member").get("/jobs/new/"))
    assert "No cluster is configured" in admin_page
    assert "register_devcluster" in admin_page and 'href="/clusters/"' in admin_page
    assert "No cluster is configured" in member_page
    assert 'name="command"' not in member_page
    response = team.client("member").post("/jobs/new/", {"subteam": team.sft.pk, "command": "true"})
    assert response.status_code == 200
    assert not Job.objects.exists()
    assert "No cluster is configured" in body(team.client("member").get("/clusters/"))


# --- a job's page -----------------------------------------------------------------------------------


def test_the_job_page_shows_facts_timeline_script_and_logs(team: Team, fake_cluster: Cluster) -> None:
    job = submit(team, fake_cluster, name="lora-sweep", command="echo hi; exit 3")
    job = finish(job, Job.State.FAILED, 3, reason="NonZeroExitCode", node_list="node1", gpus=1)
    JobEvent.objects.create(job=job, kind=JobEvent.Kind.STATE, from_state="submitting", to_state="failed")
    JobLogChunk.objects.create(job=job, stream="stdout", offset=0, data=(b"hi\n"), size=3)
    JobLogChunk.objects.create(job=job, stream="stderr", offset=0, data=(b"boom\n"), size=5)

    page = body(team.client("other").get(f"/jobs/{job.pk}/"))

    assert "lora-sweep" in page
    assert 'data-state="failed"' in page and ">Failed<" in page
    assert '<dd id="exit-code">3' in page
    assert "NonZeroExitCode" in page and "4242" in page and "node1" in page
    assert "Submitted" in page and "Submitting → Failed" in page
    assert "#SBATCH --job-name=tanuki-" in page
    assert (
        '<pre class="log" data-testid="stdout" tabindex="0" role="region" aria-labelledby="log-stdout-title">hi</pre>'
        in page
    )
    assert (
        '<pre class="log" data-testid="stderr" tabindex="0" role="region" aria-labelledby="log-stderr-title">boom</pre>'
        in page
    )
    assert f'href="/jobs/{job.pk}/logs/stdout/"' in page
    assert "hx-trigger" not in page  # finished: nothing to poll


def test_a_live_job_polls_and_stops_once_finished(team: Team, fake_cluster: Cluster) -> None:
    job = submit(team, fake_cluster)
    client = team.client("member")
    page = body(client.get(f"/jobs/{job.pk}/"))
    assert 'hx-trigger="every 3s"' in page

    fragment = body(client.get(f"/jobs/{job.pk}/", headers={"HX-Request": "true"}))
    assert fragment.lstrip().startswith('<div id="job-live"')
    assert 'hx-trigger="every 3s"' in fragment

    finish(job, Job.State.COMPLETED, 0)
    fragment = body(client.get(f"/jobs/{job.pk}/", headers={"HX-Request": "true"}))
    assert 'data-state="completed"' in fragment
    assert "hx-trigger" not in fragment


def test_the_log_page_serves_the_whole_log_as_plain_text(team: Team, fake_cluster: Cluster) -> None:
    job = submit(team, fake_cluster)
    JobLogChunk.objects.create(
        job=job, stream="stdout", offset=0, data=(f"{EVIL}\n").encode(), size=len(EVIL) + 1
    )
    JobLogChunk.objects.create(job=job, stream="stdout", offset=len(EVIL) + 1, data=(b"two\n"), size=4)
    response = team.client("member").get(f"/jobs/{job.pk}/logs/stdout/")
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert body(response) == f"{EVIL}\ntwo\n"
    assert body(team.client("member").get(f"/jobs/{job.pk}/logs/stdout/?offset={len(EVIL) + 1}")) == "two\n"
    assert team.client("member").get(f"/jobs/{job.pk}/logs/other/").status_code == 404


def test_the_tail_keeps_the_last_200_lines(team: Team, fake_cluster: Cluster) -> None:
    job = submit(team, fake_cluster)
    text = "".join(f"line {i}\n" for i in range(300))
    JobLogChunk.objects.create(job=job, stream="stdout", offset=0, data=(text).encode(), size=len(text))
    page = body(team.client("member").get(f"/jobs/{job.pk}/"))
    assert "line 100\n" in page and "line 299" in page
    assert "line 99\n" not in page


def test_cancelling_a_job_not_yet_sent_cancels_it_at_once(team: Team, fake_cluster: Cluster) -> None:
    first = submit(team, fake_cluster)
    second = services.submit_job(
        team.member("member"),
        services.JobSpec(
            subteam=team.sft, cluster=fake_cluster, name="after", command="true", gpus_per_node=1
        ),
        depends_on=first,
    )

    response = team.client("member").post(f"/jobs/{first.pk}/cancel/", follow=True)

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.state == second.state == Job.State.CANCELLED
    assert first.reason == "Cancelled before it reached the cluster."
    assert "Job cancelled." in body(response)
    assert "Cancel job" not in body(response)
    assert first.events.filter(kind=JobEvent.Kind.CANCELLED, actor=team.member("member")).exists()


def test_cancelling_a_job_on_the_cluster_asks_the_worker(team: Team, fake_cluster: Cluster) -> None:
    job = submit(team, fake_cluster)
    Job.objects.filter(pk=job.pk).update(
        state=Job.State.RUNNING, slurm_job_id="77", submit_attempted_at=timezone.now()
    )
    response = team.client("member").post(f"/jobs/{job.pk}/cancel/", headers={"HX-Request": "true"})
    job.refresh_from_db()
    assert job.state == Job.State.RUNNING
    assert job.cancel_requested_at is not None
    assert "cancel requested" in body(response)
    assert body(response).lstrip().startswith('<div id="job-live"')


def test_cancelling_a_finished_job_changes_nothing(team: Team, fake_cluster: Cluster) -> None:
    job = finish(submit(team, fake_cluster), Job.State.COMPLETED, 0)
    events = job.events.count()
    response = team.client("member").post(f"/jobs/{job.pk}/cancel/", follow=True)
    job.refresh_from_db()
    assert job.state == Job.State.COMPLETED
    assert job.events.count() == events
    assert "already finished" in body(response)


def test_resubmit_prefills_the_form_and_records_a_linked_job(team: Team, fake_cluster: Cluster) -> None:
    old = finish(
        submit(team, fake_cluster, name="flaky", command="python a.py", nodes=2), Job.State.NODE_FAIL
    )
    client = team.client("member")
    page = client.get(f"/jobs/{old.pk}/resubmit/")
    initial = page.context["form"].initial
    assert (initial["name"], initial["command"], initial["nodes"]) == ("flaky", "python a.py", 2)
    assert "then_command" not in page.context["form"].fields

    data = form(fake_cluster, team.sft, name="flaky", command="python a.py", nodes=2)
    response = client.post(f"/jobs/{old.pk}/resubmit/", data)

    new = Job.objects.exclude(pk=old.pk).get()
    assert response["Location"] == f"/jobs/{new.pk}/"
    assert new.resubmitted_from == old
    assert (new.name, new.command, new.nodes, new.state) == ("flaky", "python a.py", 2, "submitting")
    assert old.events.filter(kind=JobEvent.Kind.RESUBMITTED, message=str(new.pk)).exists()


def test_resubmit_shows_validation_errors(team: Team, fake_cluster: Cluster) -> None:
    old = submit(team, fake_cluster)
    response = team.client("member").post(
        f"/jobs/{old.pk}/resubmit/", form(fake_cluster, team.sft, time_limit_minutes=99999)
    )
    assert "time_limit_minutes" in response.context["form"].errors
    assert Job.objects.count() == 1


# --- the list ---------------------------------------------------------------------------------------


def test_the_list_filters_by_subteam_state_owner_and_cluster(team: Team, fake_cluster: Cluster) -> None:
    other_cluster = Cluster.objects.create(name="second", host="h", username="u", work_dir=RUNS)
    grant_cluster_accounts(team, other_cluster)
    mine = submit(team, fake_cluster, "member", name="mine-running")
    Job.objects.filter(pk=mine.pk).update(state=Job.State.RUNNING)
    leads = finish(submit(team, fake_cluster, "lead", name="leads-done"), Job.State.COMPLETED, 0)
    theirs = submit(team, other_cluster, "other", name="pretrain-job", subteam=team.pretrain)
    client = team.client("member")

    def names(query: str) -> set[str]:
        return {job.name for job in client.get(f"/jobs/{query}").context["jobs"]}

    assert names("") == {"mine-running", "leads-done", "pretrain-job"}
    assert names("?subteam=sft") == {"mine-running", "leads-done"}
    assert names("?subteam=pretrain") == {"pretrain-job"}
    assert names("?state=running") == {"mine-running"}
    assert names("?state=completed") == {"leads-done"}
    assert names("?state=live") == {"mine-running", "pretrain-job"}
    assert names("?owner=me") == {"mine-running"}
    assert names("?owner=lead") == {"leads-done"}
    assert names(f"?cluster={other_cluster.pk}") == {"pretrain-job"}
    assert names(f"?subteam=sft&cluster={fake_cluster.pk}&owner=lead") == {"leads-done"}
    assert names("?state=bogus&cluster=x") == {"mine-running", "leads-done", "pretrain-job"}
    assert leads.pk and theirs.pk


def test_the_list_shows_the_columns_and_polls_only_while_a_job_is_live(
    team: Team, fake_cluster: Cluster
) -> None:
    job = finish(submit(team, fake_cluster, name="done-job"), Job.State.FAILED, 3, gpus=2)
    client = team.client("member")
    page = body(client.get("/jobs/"))
    assert f'href="/jobs/{job.pk}/">done-job</a>' in page
    assert 'class="badge state-failed"' in page
    assert "Fine-tuning" in page and ">Member<" in page
    assert "4242" in page and "0:09:00" in page
    assert "hx-trigger" not in page

    submit(team, fake_cluster, name="live-job")
    page = body(client.get("/jobs/?subteam=sft"))
    assert 'hx-trigger="every 5s"' in page
    assert 'hx-get="/jobs/?subteam=sft"' in page
    fragment = body(client.get("/jobs/?subteam=sft", headers={"HX-Request": "true"}))
    assert fragment.lstrip().startswith('<section id="job-table"')
    assert "live-job" in fragment


def add_jobs(team: Team, cluster: Cluster, n: int) -> None:
    """n jobs in every state the list shows, from different owners and subteams, with events and logs."""
    roles = ["member", "lead", "other", "admin"]
    for i in range(n):
        role = roles[i % 4]
        subteam = team.pretrain if role == "other" else team.sft
        job = submit(team, cluster, role, subteam=subteam)
        if i % 3 == 0:
            finish(job, Job.State.FAILED, 1)
        elif i % 3 == 1:
            Job.objects.filter(pk=job.pk).update(state=Job.State.RUNNING, started_at=timezone.now())
        JobLogChunk.objects.create(job=job, stream="stdout", offset=0, data=(b"x\n"), size=2)


@pytest.mark.parametrize(
    "url",
    [
        "/jobs/",
        "/jobs/?subteam=sft&state=failed",
        "/jobs/?owner=me",
        "/clusters/",
        "/subteams/sft/",
        "/members/member/",
    ],
)
def test_pages_run_the_same_number_of_queries_for_1x_and_10x_jobs(
    team: Team, fake_cluster: Cluster, url: str
) -> None:
    client = team.client("member")
    add_jobs(team, fake_cluster, 1)
    client.get(url)  # per-process caches (content types, translations)
    with CaptureQueriesContext(connection) as one:
        assert client.get(url).status_code == 200
    add_jobs(team, fake_cluster, 9)
    Node.objects.create(cluster=fake_cluster, name="node3", state="IDLE", gpus_total=8)
    with CaptureQueriesContext(connection) as ten:
        assert client.get(url).status_code == 200
    assert len(one) == len(ten), "\n".join(q["sql"][:160] for q in ten.captured_queries)


def test_a_job_page_runs_a_fixed_number_of_queries(team: Team, fake_cluster: Cluster) -> None:
    client = team.client("member")
    job = submit(team, fake_cluster)
    client.get(f"/jobs/{job.pk}/")
    with CaptureQueriesContext(connection) as few:
        client.get(f"/jobs/{job.pk}/")
    for i in range(10):
        JobEvent.objects.create(job=job, kind=JobEvent.Kind.STATE, actor=team.member("lead"), message=str(i))
        JobLogChunk.objects.create(job=job, stream="stdout", offset=i * 2, data=(f"{i}\n").encode(), size=2)
    with CaptureQueriesContext(connection) as many:
        client.get(f"/jobs/{job.pk}/")
    assert len(few) == len(many), "\n".join(q["sql"][:160] for q in many.captured_queries)


# --- escaping ---------------------------------------------------------------------------------------


def test_what_users_type_is_escaped_everywhere(team: Team, fake_cluster: Cluster) -> None:
    job = submit(team, fake_cluster, name="evil", command=f"echo '{EVIL}'")
    Job.objects.filter(pk=job.pk).update(name=EVIL, reason=EVIL)  # as if stored by an older version
    JobLogChunk.objects.create(job=job, stream="stdout", offset=0, data=(EVIL).encode(), size=len(EVIL))
    JobEvent.objects.create(job=job, kind=JobEvent.Kind.ERROR, message=EVIL)
    Node.objects.filter(name="node2").update(reason=EVIL)
    Cluster.objects.filter(pk=fake_cluster.pk).update(last_error=EVIL)
    client = team.client("admin")
    for url in [
        "/jobs/",
        f"/jobs/{job.pk}/",
        f"/jobs/{job.pk}/resubmit/",
        "/clusters/",
        f"/clusters/{fake_cluster.pk}/",
        "/subteams/sft/",
        "/members/member/",
    ]:
        page = body(client.get(url))
        assert EVIL not in page, url
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body(client.get(f"/jobs/{job.pk}/"))
    preview = client.post(
        "/jobs/preview/",
        form(fake_cluster, team.sft, command=f"echo '{EVIL}'"),
        headers={"HX-Request": "true"},
    )
    assert EVIL not in body(preview)
    assert "&lt;script&gt;" in body(preview)


# --- clusters ---------------------------------------------------------------------------------------


def test_the_cluster_pages_show_status_gpus_and_drained_nodes(team: Team, fake_cluster: Cluster) -> None:
    client = team.client("member")
    listing = body(client.get("/clusters/"))
    assert "fake" in listing and "Reachable" in listing
    assert "1 node drained or down" in listing
    assert "2 of 16 (6 free)" in listing

    page = body(client.get(f"/clusters/{fake_cluster.pk}/"))
    assert '<tr class="node-out" data-node="node2">' in page
    assert "ECC errors on GPU 3" in page
    assert '<tr  data-node="node1">' in page or 'data-node="node1"' in page
    assert "2/8" in page
    assert "debug" in page and "30 min" in page
    assert "none pinned" in page


def test_an_unreachable_cluster_shows_its_error(team: Team, fake_cluster: Cluster) -> None:
    Cluster.objects.filter(pk=fake_cluster.pk).update(
        status=Cluster.Status.HOST_KEY_MISMATCH, last_error="host key changed: SHA256:abc"
    )
    page = body(team.client("member").get(f"/clusters/{fake_cluster.pk}/"))
    assert "Host key changed" in page
    assert "host key changed: SHA256:abc" in page
    assert "Nothing is sent to this cluster" in page


def test_checking_an_unreachable_host_key_reports_the_error(team: Team, fake_cluster: Cluster) -> None:
    response = team.client("admin").post(f"/clusters/{fake_cluster.pk}/host-key/", follow=True)
    assert "Could not read the host key" in body(response)
    fake_cluster.refresh_from_db()
    assert fake_cluster.host_key == ""


def test_trusting_garbage_is_refused(team: Team, fake_cluster: Cluster) -> None:
    response = team.client("admin").post(
        f"/clusters/{fake_cluster.pk}/trust/", {"key_line": "not a key"}, follow=True
    )
    assert "That host key was not pinned" in body(response)
    fake_cluster.refresh_from_db()
    assert fake_cluster.host_key == ""


def test_the_nav_links_to_jobs_and_clusters(team: Team, fake_cluster: Cluster) -> None:
    page = body(team.client("member").get("/jobs/"))
    assert '<a href="/jobs/" aria-current="page">Jobs</a>' in page
    assert '<a href="/clusters/" >Clusters</a>' in page or 'href="/clusters/"' in page


def test_subteam_and_member_pages_list_their_latest_jobs(team: Team, fake_cluster: Cluster) -> None:
    job = submit(team, fake_cluster, name="panel-job")
    other = submit(team, fake_cluster, "other", name="not-here", subteam=team.pretrain)
    client = team.client("lead")
    subteam_page = body(client.get("/subteams/sft/"))
    assert f'href="/jobs/{job.pk}/">panel-job</a>' in subteam_page
    assert "not-here" not in subteam_page
    assert 'href="/jobs/?subteam=sft"' in subteam_page
    member_page = body(client.get("/members/member/"))
    assert "panel-job" in member_page and 'href="/jobs/?owner=member"' in member_page
    assert "not-here" in body(client.get("/members/other/"))
    assert other.pk


# --- host keys, against the real dev cluster (tests/scheduler/conftest.py) -------------------------------


def test_an_admin_checks_the_dev_clusters_key_and_trusts_it_again(team: Team, cluster: Cluster) -> None:
    from scheduler import ssh

    pinned = cluster.host_key
    client = team.client("admin")

    same = client.post(f"/clusters/{cluster.pk}/host-key/")
    assert same.status_code == 200
    assert "This is the key already pinned" in body(same)
    fingerprint = ssh.fingerprint(ssh.parse_host_key(pinned))
    assert f'<code id="fingerprint">{fingerprint}</code>' in body(same)

    Cluster.objects.filter(pk=cluster.pk).update(host_key="", status=Cluster.Status.HOST_KEY_MISMATCH)
    fresh = client.post(f"/clusters/{cluster.pk}/host-key/")
    assert "Trust this key" in body(fresh)
    key_line = fresh.context["key_line"]
    assert key_line == " ".join(pinned.split()[:2])

    response = client.post(f"/clusters/{cluster.pk}/trust/", {"key_line": key_line}, follow=True)
    assert f"Host key {fingerprint} is now trusted for {cluster.name}." in body(response)
    cluster.refresh_from_db()
    assert (cluster.host_key, cluster.status) == (key_line, Cluster.Status.UNKNOWN)
