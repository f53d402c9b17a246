"""Failure triage on the real dev cluster: custom jobs print each recorded failure signature and exit
non-zero; once the worker has read their logs, each is classified correctly in the API and on the page,
and the one-click exclude-node fix gives Slurm a job that really avoids the node."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path

from rest_framework.test import APIClient

from scheduler import fixes, services
from scheduler.models import Cluster, Job
from scheduler.triage import Fix
from tests.personas import Team
from tests.scheduler.conftest import Remote

RECORDED = Path(__file__).parent / "recorded" / "triage"
# Cases a custom job can reproduce by itself (Slurm decides the node-failure, time-limit and
# memory-kill states; the table's tests cover those from recorded logs).
CASES = [
    c
    for c in json.loads((RECORDED / "cases.json").read_text())
    if c["state"] == "failed" and c["exit_code"] is not None
]


def _printing(log: str, exit_code: int) -> str:
    """A command that writes the recorded excerpt to stderr and exits with the recorded code."""
    return f"cat >&2 <<'EOF'\n{(RECORDED / log).read_text()}EOF\nexit {exit_code}"


def test_jobs_that_fail_each_way_are_explained(
    team: Team, cluster: Cluster, run_until: Callable[..., None]
) -> None:
    member = team.member("member")
    jobs = {
        index: services.submit_job(
            member,
            services.JobSpec(
                subteam=team.sft,
                cluster=cluster,
                name=f"fails-{case['code']}-{index}",
                command=_printing(case["log"], case["exit_code"]),
                gpus_per_node=1,
            ),
        )
        for index, case in enumerate(CASES)
    }

    def diagnosed() -> bool:
        return all(Job.objects.get(pk=job.pk).diagnosis for job in jobs.values())

    run_until(diagnosed, timeout=120)
    api = APIClient()
    api.force_authenticate(team.users["member"])
    page_client = team.client("member")
    for index, case in enumerate(CASES):
        job = Job.objects.get(pk=jobs[index].pk)
        assert job.state == Job.State.FAILED, (case, job.state)
        if case["exit_code"] < 128:  # above: the shell's 128 + signal, which sacct reports its own way
            assert job.exit_code == case["exit_code"], (case, job.exit_code)
        data = api.get(f"/api/v1/jobs/{job.pk}/").json()["diagnosis"]
        assert data["code"] == case["code"], (case["log"], data)
        assert any(case["evidence"] in line["text"] for line in data["evidence"]), data["evidence"]
        page = page_client.get(f"/jobs/{job.pk}/").content.decode()
        assert f'data-code="{case["code"]}"' in page


def test_exclude_node_resubmits_away_from_the_node(
    team: Team, cluster: Cluster, run_until: Callable[..., None], remote: Remote
) -> None:
    member = team.member("member")
    job = services.submit_job(
        member,
        services.JobSpec(
            subteam=team.sft,
            cluster=cluster,
            name="nccl-hang",
            command=_printing("nccl_timeout.log", 134).replace("node3", "$(hostname -s)"),
            gpus_per_node=1,
        ),
    )
    run_until(lambda: bool(Job.objects.get(pk=job.pk).diagnosis), timeout=60)
    job.refresh_from_db()
    assert job.diagnosis is not None and job.diagnosis["code"] == "nccl"
    # The here-document is quoted: the log says "$(hostname -s)" literally, so blame falls back on the
    # job's only node.
    assert job.diagnosis["node"] == job.node_list
    assert Fix.EXCLUDE_NODE in fixes.offered(job)
    new = fixes.fix_job(member, job, Fix.EXCLUDE_NODE)
    assert f"#SBATCH --exclude={shlex.quote(job.node_list)}" in new.script
    run_until(lambda: Job.objects.get(pk=new.pk).is_terminal, timeout=60)
    new.refresh_from_db()
    assert new.node_list and new.node_list != job.node_list
    assert remote.sacct_state(new.slurm_job_id) == "FAILED"
