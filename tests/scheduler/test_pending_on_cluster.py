"""Why a job waits, on the real dev cluster: one waiting inside a full booking (named with the job that
holds it and Slurm's start estimate), one behind a dependency, one asking for more nodes than exist;
the form's start estimate and preflight asked as the member; a missing data file stops a job before
anything reaches Slurm."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from rest_framework.test import APIClient

from lending import services as lending
from lending.models import Reservation
from scheduler import pending, services, slurm
from scheduler.models import Cluster, Job, Partition
from scheduler.worker import Worker
from tests.personas import Team
from tests.scheduler.conftest import Remote


@pytest.fixture
def booked_names(remote: Remote) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        remote.run(*slurm.delete_reservation_command(name))


def spec(team: Team, cluster: Cluster, name: str, command: str, **kw: object) -> services.JobSpec:
    return services.JobSpec(subteam=team.sft, cluster=cluster, name=name, command=command, **kw)  # type: ignore[arg-type]


def fresh(job: Job) -> Job:
    return Job.objects.get(pk=job.pk)


def test_a_job_waiting_in_a_full_booking_names_the_booking_and_who_holds_it(
    team: Team,
    cluster: Cluster,
    worker: Worker,
    run_until: Callable[..., None],
    booked_names: list[str],
) -> None:
    worker.cycle()  # inventory
    member = team.member("member")
    now = timezone.now()
    booking = lending.request_reservation(
        member, subteam=team.sft, cluster=cluster, gpus=8, purpose="full booking",
        start=now, end=now + dt.timedelta(minutes=20),
    )  # fmt: skip
    lending.approve(team.member("admin"), booking)
    booking.refresh_from_db()
    booked_names.append(booking.slurm_name)
    run_until(lambda: Reservation.objects.get(pk=booking.pk).on_cluster, timeout=60)

    holder = services.submit_job(
        member, spec(team, cluster, "holder", "sleep 120", gpus_per_node=8, time_limit_minutes=5)
    )
    waiter = services.submit_job(
        member, spec(team, cluster, "waiter", "hostname", gpus_per_node=8, time_limit_minutes=5)
    )
    assert holder.reservation == waiter.reservation == booking.slurm_name
    try:
        run_until(
            lambda: (
                fresh(holder).state == Job.State.RUNNING
                and fresh(waiter).state == Job.State.PENDING
                and fresh(waiter).expected_start_at is not None
            ),
            timeout=60,
        )
        job = fresh(waiter)
        found = pending.explain(job)
        assert found is not None and found.known and not found.never
        assert (
            f"booking #{booking.pk}" in found.detail
            and "holder" in found.detail
            and "(8 GPUs)" in found.detail
        )
        assert found.link == f"/lending/{booking.pk}/" or found.link.endswith(f"/{booking.pk}/")
        # Slurm's estimate: once the holder's time limit is up, at the latest.
        started = fresh(holder).started_at
        assert started is not None and job.expected_start_at is not None
        assert job.expected_start_at <= started + dt.timedelta(minutes=5, seconds=30)
        api = APIClient()
        api.force_authenticate(team.users["member"])
        data = api.get(f"/api/v1/jobs/{job.pk}/").json()["waiting"]
        assert data["code"] == job.reason.split(",")[0] and "holder" in data["detail"]
        page = team.client("member").get(f"/jobs/{job.pk}/").content.decode()
        assert f"booking #{booking.pk}" in page and 'id="expected-start">~' in page
    finally:
        for job in (holder, waiter):
            services.cancel_job(member, fresh(job))
        run_until(lambda: fresh(holder).is_terminal and fresh(waiter).is_terminal, timeout=60)


def test_a_job_behind_a_dependency_names_it(
    team: Team, cluster: Cluster, run_until: Callable[..., None]
) -> None:
    member = team.member("member")
    first, second = services.submit_chain(
        member, [spec(team, cluster, "prepare", "sleep 8"), spec(team, cluster, "train", "hostname")]
    )
    run_until(
        lambda: fresh(second).reason.startswith("Dependency") and fresh(first).state == Job.State.RUNNING
    )
    found = pending.explain(fresh(second))
    assert found is not None and found.code == "Dependency"
    assert found.text == "Waiting for the job it runs after to finish."
    assert found.detail == "It runs after prepare, which is running."
    run_until(lambda: fresh(second).is_terminal, timeout=60)
    assert pending.explain(fresh(second)) is None


def test_more_nodes_than_the_partition_has_is_explained(
    team: Team, cluster: Cluster, worker: Worker, run_until: Callable[..., None]
) -> None:
    worker.cycle()  # inventory: the form knows the partition's size and refuses at once
    nodes = Partition.objects.get(cluster=cluster, name="gpu").total_nodes
    with pytest.raises(ValidationError) as refused:
        services.submit_job(team.member("member"), spec(team, cluster, "huge", "hostname", nodes=nodes + 1))
    assert f"The partition has only {nodes} nodes." in str(refused.value)
    # An inventory not read yet: the job reaches Slurm, which queues it (EnforcePartLimits=NO) where it
    # can never start; once the inventory is read again the job says so, with the numbers.
    Partition.objects.filter(cluster=cluster).delete()
    job = services.submit_job(team.member("member"), spec(team, cluster, "huge", "hostname", nodes=nodes + 1))
    try:
        run_until(
            lambda: (
                fresh(job).state == Job.State.PENDING
                and fresh(job).reason not in ("", "None")
                and Partition.objects.filter(cluster=cluster).exists()
            ),
            timeout=90,
        )
        found = pending.explain(fresh(job))
        assert found is not None and found.never and found.known, found
        assert found.detail == f"It asks for {nodes + 1} nodes; partition gpu has {nodes}."
        page = team.client("member").get(f"/jobs/{job.pk}/").content.decode()
        assert "Will never start as asked." in page and "Change and resubmit" in page
    finally:
        services.cancel_job(team.member("member"), fresh(job))
        run_until(lambda: fresh(job).is_terminal, timeout=60)


def test_the_preview_asks_slurm_when_it_would_start_and_checks_the_paths(
    team: Team, cluster: Cluster, worker: Worker
) -> None:
    worker.cycle()
    member = team.member("member")
    job = services.build_job(member, services.validate_spec(spec(team, cluster, "soon", "hostname")))
    estimate = pending.estimate_start(job, worker.pool)
    assert estimate.error == "" and estimate.problems == []
    assert estimate.start is not None and abs(estimate.start - timezone.now()) < dt.timedelta(minutes=5)
    assert estimate.nodes.startswith("node")
    assert Job.objects.filter(name="soon").count() == 0  # nothing recorded, nothing queued


def test_a_preamble_that_activates_a_missing_environment_stops_the_job_before_slurm(
    team: Team, cluster: Cluster, worker: Worker, run_until: Callable[..., None], remote: Remote
) -> None:
    cluster.env_preamble = "source /opt/nowhere/envs/tanuki/bin/activate"
    cluster.save()
    member = team.member("member")
    preview = services.build_job(member, services.validate_spec(spec(team, cluster, "env", "python -V")))
    estimate = pending.estimate_start(preview, worker.pool)
    assert estimate.problems == ["preamble: /opt/nowhere/envs/tanuki/bin/activate does not exist"]
    job = services.submit_job(member, spec(team, cluster, "env", "python -V"))
    run_until(lambda: fresh(job).is_terminal, timeout=60)
    job = fresh(job)
    assert job.state == Job.State.FAILED and job.slurm_job_id == "" and job.submit_attempted_at is not None
    assert job.reason == "preflight: preamble: /opt/nowhere/envs/tanuki/bin/activate does not exist"
    assert job.diagnosis is not None and job.diagnosis["code"] == "preflight"
    assert not remote.for_job(job).exists(job.run_dir)  # nothing staged either
    api = APIClient()
    api.force_authenticate(team.users["member"])
    data = api.get(f"/api/v1/jobs/{job.pk}/").json()["diagnosis"]
    assert data["code"] == "preflight" and data["evidence"][0]["text"].endswith("does not exist")


def test_a_job_with_no_room_to_write_is_refused_with_what_is_left(
    team: Team,
    cluster: Cluster,
    worker: Worker,
    run_until: Callable[..., None],
    remote: Remote,
    settings: object,
) -> None:
    # More than any disk of the dev cluster holds: `df`, run as the member, says how much there is.
    settings.PREFLIGHT_MIN_FREE_GB = 10**9  # type: ignore[attr-defined]
    member = team.member("member")
    preview = services.build_job(member, services.validate_spec(spec(team, cluster, "full", "hostname")))
    problems = pending.estimate_start(preview, worker.pool).problems
    assert len(problems) == 1 and problems[0].startswith("disk: /"), problems
    assert problems[0].endswith("GB free; the run needs at least 1000000000.0 GB")
    job = services.submit_job(member, spec(team, cluster, "full", "hostname"))
    run_until(lambda: fresh(job).is_terminal, timeout=60)
    job = fresh(job)
    assert job.state == Job.State.FAILED and job.slurm_job_id == ""
    assert job.reason.startswith("preflight: disk: /") and "GB free" in job.reason
    assert not remote.for_job(job).exists(job.run_dir)

    settings.PREFLIGHT_MIN_FREE_GB = 0.001  # type: ignore[attr-defined]
    assert pending.estimate_start(preview, worker.pool).problems == []
