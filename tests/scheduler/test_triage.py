"""Failure triage without a cluster: the signature table against recorded log excerpts, the worker step
that records a diagnosis from stored logs, the job page and API showing it, and the one-click fixes
producing exactly the changed job (sbatch options, run.yaml) or a refusal that submits nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from scheduler import fixes, triage
from scheduler.models import Cluster, Job, JobLogChunk
from scheduler.training_jobs import TrainingRequest
from scheduler.triage import Fix
from tests.personas import Team, grant_cluster_accounts
from tests.scheduler.test_training_jobs import sft, spec
from tests.scheduler.test_web import body, finish, make_fake_cluster, submit

RECORDED = Path(__file__).parent / "recorded" / "triage"
CASES = json.loads((RECORDED / "cases.json").read_text())


@pytest.fixture
def fake_cluster(team: Team) -> Cluster:
    cluster = make_fake_cluster()
    grant_cluster_accounts(team, cluster)
    return cluster


def store_log(
    job: Job, text: str | bytes, stream: str = JobLogChunk.Stream.STDERR, chunk: int = 4096
) -> None:
    """The log as the worker's read_logs step stores it: chunks from byte offsets, then final."""
    data = text.encode() if isinstance(text, str) else text
    for offset in range(0, len(data), chunk):
        piece = data[offset : offset + chunk]
        JobLogChunk.objects.create(job=job, stream=stream, offset=offset, data=piece, size=len(piece))
    Job.objects.filter(pk=job.pk).update(logs_final=True)


class FakePoll:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster


# --- the table -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[f"{c['log']}-{c['state']}" for c in CASES])
def test_each_recorded_failure_is_classified(case: dict[str, Any]) -> None:
    text = (RECORDED / case["log"]).read_text()
    found = triage.classify(case["state"], case["exit_code"], [("stderr", text)], case.get("node_list", ""))
    assert found.code == case["code"]
    assert any(case["evidence"] in line.text for line in found.evidence), found.evidence
    for line in found.evidence:
        assert line.text == text.splitlines()[line.line - 1].rstrip()[: triage.EVIDENCE_CHARS]
    assert found.node == case.get("node", found.node if "node" not in case else "")
    if "last_frame" in case:
        assert found.last_frame.endswith(case["last_frame"])


def test_every_row_of_the_table_has_a_recorded_excerpt() -> None:
    covered = {case["code"] for case in CASES}
    assert covered == set(triage.BY_CODE) - {triage.PREFLIGHT.code}, set(triage.BY_CODE) - covered


def test_a_successful_or_cancelled_job_is_never_a_failure_match() -> None:
    oom = (RECORDED / "cuda_oom.log").read_text()
    assert triage.classify(Job.State.CANCELLED, 0, [("stderr", oom)]).code == "unknown"
    assert triage.classify(Job.State.COMPLETED, 0, [("stderr", oom)]).code == "unknown"


def test_a_config_error_needs_exit_code_2() -> None:
    text = (RECORDED / "config_refused.log").read_text()
    assert triage.classify(Job.State.FAILED, 2, [("stderr", text)]).code == "config_refused"
    assert triage.classify(Job.State.FAILED, 1, [("stderr", text)]).code == "unknown"


def test_the_log_that_proves_it_may_be_stdout() -> None:
    text = (RECORDED / "loss_nan.log").read_text()
    found = triage.classify(Job.State.FAILED, 1, [("stderr", ""), ("stdout", text)])
    assert found.code == "loss_nan" and {e.stream for e in found.evidence} == {"stdout"}


# --- the worker step -------------------------------------------------------------------------------------


def test_the_step_records_a_diagnosis_once_the_log_is_final(team: Team, fake_cluster: Cluster) -> None:
    job = finish(submit(team, fake_cluster), Job.State.FAILED, exit_code=1, node_list="node1")
    store_log(job, (RECORDED / "cuda_oom.log").read_text())
    Job.objects.filter(pk=job.pk).update(logs_final=False)
    triage.diagnose_jobs(FakePoll(fake_cluster))
    assert Job.objects.get(pk=job.pk).diagnosis is None  # the log may still grow
    Job.objects.filter(pk=job.pk).update(logs_final=True)
    triage.diagnose_jobs(FakePoll(fake_cluster))
    job.refresh_from_db()
    assert job.diagnosis is not None and job.diagnosis["code"] == "cuda_oom"
    first = job.diagnosis["at"]
    triage.diagnose_jobs(FakePoll(fake_cluster))  # once only
    job.refresh_from_db()
    assert job.diagnosis["at"] == first


def test_succeeded_and_cancelled_jobs_are_not_diagnosed(team: Team, fake_cluster: Cluster) -> None:
    done = finish(submit(team, fake_cluster), Job.State.COMPLETED, exit_code=0)
    cancelled = finish(submit(team, fake_cluster), Job.State.CANCELLED)
    for job in (done, cancelled):
        store_log(job, "Traceback (most recent call last):\nValueError: x\n")
    triage.diagnose_jobs(FakePoll(fake_cluster))
    assert Job.objects.filter(diagnosis__isnull=False).count() == 0


def test_a_huge_unreadable_log_is_read_only_at_its_end(team: Team, fake_cluster: Cluster) -> None:
    job = finish(submit(team, fake_cluster), Job.State.FAILED, exit_code=1)
    junk = bytes(range(256)) * (8 << 10)  # 2 MiB of every byte value: invalid UTF-8, NULs, controls
    store_log(job, junk + (RECORDED / "disk_quota.log").read_bytes(), chunk=256 << 10)
    with CaptureQueriesContext(connection) as queries:
        found = triage.diagnose(Job.objects.get(pk=job.pk))
    assert found.code == "disk_quota"
    read = sum(len(bytes(c.data)) for c in JobLogChunk.objects.filter(job=job).order_by("-offset")[:2])
    assert read <= 2 * (256 << 10)  # only the last chunks (the tail) are touched
    assert len(queries) <= 8


def test_an_unknown_failure_shows_its_last_lines(team: Team, fake_cluster: Cluster) -> None:
    job = finish(submit(team, fake_cluster), Job.State.FAILED, exit_code=3)
    store_log(job, (RECORDED / "unknown.log").read_text(), stream=JobLogChunk.Stream.STDOUT)
    found = triage.diagnose(Job.objects.get(pk=job.pk))
    assert found.code == "unknown"
    assert [e.text for e in found.evidence] == ["step 1 done", "step 2 done", "giving up"]


# --- page and API ---------------------------------------------------------------------------------------


def _diagnosed(team: Team, cluster: Cluster, log: str, state: str = Job.State.FAILED, **fields: Any) -> Job:
    job = finish(
        submit(team, cluster, **fields.pop("submit", {})),
        state,
        exit_code=fields.pop("exit_code", 1),
        **fields,
    )
    store_log(job, (RECORDED / log).read_text())
    triage.diagnose(Job.objects.get(pk=job.pk))
    return Job.objects.get(pk=job.pk)


def test_the_job_page_explains_the_failure_and_marks_the_proof(team: Team, fake_cluster: Cluster) -> None:
    job = _diagnosed(team, fake_cluster, "node_failure.log", state=Job.State.NODE_FAIL, node_list="node[1-2]")
    page = body(team.client("member").get(f"/jobs/{job.pk}/"))
    assert 'id="diagnosis" data-code="node_failure"' in page
    assert "A node failed" in page and "<code>node2</code>" in page
    assert '<mark class="proof">slurmstepd: error: *** JOB 48211 ON node2 CANCELLED' in page
    assert 'data-fix="exclude_node"' in page
    # Someone who may not resubmit sees why, but no buttons.
    other = body(team.client("other").get(f"/jobs/{job.pk}/"))
    assert "A node failed" in other and "data-fix=" not in other


def test_the_japanese_page_explains_in_japanese(team: Team, fake_cluster: Cluster) -> None:
    job = _diagnosed(team, fake_cluster, "cuda_oom.log")
    page = body(team.client("member", language="ja").get(f"/jobs/{job.pk}/"))
    assert "失敗の理由" in page and "GPU のメモリ" in page


def test_the_api_gives_the_diagnosis(team: Team, fake_cluster: Cluster) -> None:
    job = _diagnosed(team, fake_cluster, "cuda_oom.log", submit={"command": "python train.py"})
    api = APIClient(HTTP_ACCEPT_LANGUAGE="en")
    api.force_authenticate(team.users["member"])
    data = api.get(f"/api/v1/jobs/{job.pk}/").json()["diagnosis"]
    assert data["code"] == "cuda_oom" and data["title"] == "CUDA out of memory"
    assert any("CUDA out of memory" in e["text"] for e in data["evidence"])
    # A custom command has no micro batch to halve: the fix is not offered on the job.
    assert data["fixes"] == []
    listed = api.get("/api/v1/jobs/").json()["results"][0]["diagnosis"]
    assert listed["code"] == "cuda_oom"
    running = api.get(f"/api/v1/jobs/{submit(team, fake_cluster).pk}/").json()
    assert running["diagnosis"] is None


# --- fixes ----------------------------------------------------------------------------------------------


def _training_job(team: Team, cluster: Cluster, request: TrainingRequest, **fields: Any) -> Job:
    from scheduler import services

    return services.submit_job(team.member("member"), spec(team, cluster, request, **fields))


def test_halving_the_micro_batch_keeps_the_global_batch(team: Team, fake_cluster: Cluster) -> None:
    job = _training_job(
        team, fake_cluster, sft(micro_batch_size=6, global_batch_size=192), nodes=2, gpus_per_node=8
    )
    before = yaml.safe_load(job.config_yaml)["training"]
    assert (before["micro_batch_size"], before["gradient_accumulation_steps"]) == (6, 2)
    finish(job, Job.State.FAILED, exit_code=1)
    store_log(job, (RECORDED / "cuda_oom.log").read_text())
    triage.diagnose(Job.objects.get(pk=job.pk))
    api = APIClient(HTTP_ACCEPT_LANGUAGE="en")
    api.force_authenticate(team.users["member"])
    detail = api.get(f"/api/v1/jobs/{job.pk}/").json()["diagnosis"]
    assert [f["action"] for f in detail["fixes"]] == [Fix.HALVE_MICRO_BATCH]
    response = api.post(f"/api/v1/jobs/{job.pk}/fix/", {"action": Fix.HALVE_MICRO_BATCH}, format="json")
    assert response.status_code == 201, response.content
    new = Job.objects.get(pk=response.json()["id"])
    after = yaml.safe_load(new.config_yaml)["training"]
    assert (after["micro_batch_size"], after["gradient_accumulation_steps"]) == (3, 4)
    assert 6 * 2 * 16 == 3 * 4 * 16  # the global batch, 192, is kept
    assert new.resubmitted_from_id == job.pk and new.state == Job.State.SUBMITTING
    assert {
        k: v for k, v in before.items() if k not in ("micro_batch_size", "gradient_accumulation_steps")
    } == {k: v for k, v in after.items() if k not in ("micro_batch_size", "gradient_accumulation_steps")}


def test_a_micro_batch_of_one_cannot_be_halved(team: Team, fake_cluster: Cluster) -> None:
    job = _training_job(team, fake_cluster, sft(micro_batch_size=1))
    finish(job, Job.State.FAILED, exit_code=1)
    store_log(job, (RECORDED / "cuda_oom.log").read_text())
    triage.diagnose(Job.objects.get(pk=job.pk))
    job.refresh_from_db()
    assert fixes.offered(job) == []
    api = APIClient(HTTP_ACCEPT_LANGUAGE="en")
    api.force_authenticate(team.users["member"])
    response = api.post(f"/api/v1/jobs/{job.pk}/fix/", {"action": Fix.HALVE_MICRO_BATCH}, format="json")
    assert response.status_code == 400 and "already 1" in response.content.decode()
    assert Job.objects.count() == 1


def test_excluding_the_failed_node_adds_sbatch_exclude(team: Team, fake_cluster: Cluster) -> None:
    job = _diagnosed(team, fake_cluster, "nccl_timeout.log", node_list="node[1-4]", exit_code=134)
    response = team.client("member").post(f"/jobs/{job.pk}/fix/", {"action": Fix.EXCLUDE_NODE})
    new = Job.objects.exclude(pk=job.pk).get()
    assert response.status_code == 302 and response["Location"] == f"/jobs/{new.pk}/"
    assert new.exclude_nodes == "node3"
    assert "#SBATCH --exclude=node3" in new.script
    assert new.command == job.command and new.time_limit_minutes == job.time_limit_minutes


def test_a_longer_time_limit_stays_within_the_partition(team: Team, fake_cluster: Cluster) -> None:
    job = _diagnosed(
        team,
        fake_cluster,
        "time_limit.log",
        state=Job.State.TIMEOUT,
        exit_code=0,
        submit={"time_limit_minutes": 900},
    )
    new = fixes.fix_job(team.member("member"), job, Fix.EXTEND_TIME)
    assert new.time_limit_minutes == 24 * 60  # the partition's limit, not 1800
    assert "#SBATCH --time=1440" in new.script
    finish(new, Job.State.TIMEOUT, exit_code=0)
    store_log(new, (RECORDED / "time_limit.log").read_text())
    triage.diagnose(Job.objects.get(pk=new.pk))
    new.refresh_from_db()
    assert Fix.EXTEND_TIME not in fixes.offered(new)
    response = team.client("member").post(f"/jobs/{new.pk}/fix/", {"action": Fix.EXTEND_TIME}, follow=True)
    assert "longest time limit (1440 min)" in body(response)
    assert Job.objects.count() == 2


def test_resuming_points_the_new_run_at_the_old_checkpoints(team: Team, fake_cluster: Cluster) -> None:
    job = _training_job(team, fake_cluster, sft(extra_yaml="training: {seed: 7}\n"))
    finish(job, Job.State.NODE_FAIL, exit_code=0, node_list="node1")
    store_log(job, (RECORDED / "node_failure.log").read_text())
    triage.diagnose(Job.objects.get(pk=job.pk))
    new = fixes.fix_job(team.member("member"), Job.objects.get(pk=job.pk), Fix.RESUME)
    config = yaml.safe_load(new.config_yaml)
    assert config["checkpoint"]["resume"] == job.output_dir
    assert config["training"]["seed"] == 7  # the member's own extra YAML is kept


def test_only_who_may_resubmit_may_fix(team: Team, fake_cluster: Cluster) -> None:
    job = _diagnosed(team, fake_cluster, "nccl_timeout.log", node_list="node[1-4]")
    assert team.client("other").post(f"/jobs/{job.pk}/fix/", {"action": Fix.EXCLUDE_NODE}).status_code == 403
    api = APIClient(HTTP_ACCEPT_LANGUAGE="en")
    api.force_authenticate(team.users["other"])
    assert (
        api.post(f"/api/v1/jobs/{job.pk}/fix/", {"action": Fix.EXCLUDE_NODE}, format="json").status_code
        == 403
    )
    api.force_authenticate(team.users["member"])
    assert api.post(f"/api/v1/jobs/{job.pk}/fix/", {"action": "rm -rf"}, format="json").status_code == 400
    assert Job.objects.count() == 1
