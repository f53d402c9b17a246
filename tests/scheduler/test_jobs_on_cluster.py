"""Jobs on the real dev cluster: truthful end states, cancel, chains."""

from __future__ import annotations

from collections.abc import Callable

from scheduler import services
from scheduler.models import Cluster, Job
from tests.personas import Team


def spec(team: Team, cluster: Cluster, name: str, command: str, **kw: object) -> services.JobSpec:
    return services.JobSpec(subteam=team.sft, cluster=cluster, name=name, command=command, **kw)  # type: ignore[arg-type]


def test_a_failing_job_ends_failed_with_its_exit_code(
    team: Team, cluster: Cluster, run_until: Callable[..., None]
) -> None:
    job = services.submit_job(team.member("member"), spec(team, cluster, "fails", "echo hi; exit 3"))
    run_until(lambda: Job.objects.get(pk=job.pk).is_terminal)
    job.refresh_from_db()
    assert (job.state, job.exit_code) == (Job.State.FAILED, 3)
    assert job.slurm_job_id.isdigit()
    assert [e.to_state for e in job.events.all()][-1] == "failed"
