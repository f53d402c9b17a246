"""The series and keys endpoints: shape, downsampling, refusals."""

from __future__ import annotations

import gzip
import json
import uuid
from typing import Any

from metrics import ingest, wandb_file
from metrics.models import MetricCursor
from tests.metrics.conftest import LocalRunFiles, MakeJob
from tests.personas import Team

SERIES = "/api/v1/metrics/series/"
KEYS = "/api/v1/metrics/keys/"


def test_a_member_gets_downsampled_series_of_several_jobs_with_the_spike(
    team: Team, make_job: MakeJob, files: LocalRunFiles, run_file: bytes
) -> None:
    first, second = make_job(name="run-a"), make_job(name="run-b", subteam=team.pretrain)
    for job in (first, second):
        files.place(job, run_file)
        ingest.ingest_job(job, files)

    query: dict[str, Any] = {"job": [str(first.pk), str(second.pk)], "key": "train/loss", "points": 20}
    response = team.client("member").get(SERIES, query)

    assert response.status_code == 200
    body = response.json()
    assert [s["job"] for s in body["series"]] == [str(first.pk), str(second.pk)]
    assert [s["name"] for s in body["series"]] == ["run-a", "run-b"]
    loss = body["series"][0]
    assert len(loss["steps"]) <= 20 and loss["width"] == 16
    assert max(loss["maxs"]) == 42.0  # the spike at step 150
    assert len(loss["steps"]) == len(loss["values"]) == len(loss["mins"]) == len(loss["maxs"])


def test_zooming_reads_raw_points_of_the_range(
    team: Team, make_job: MakeJob, files: LocalRunFiles, run_file: bytes
) -> None:
    job = make_job()
    files.place(job, run_file)
    ingest.ingest_job(job, files)

    query: dict[str, Any] = {"job": str(job.pk), "key": "train/loss", "min_step": 140, "max_step": 160}
    body = team.client("other").get(SERIES, query).json()

    series = body["series"][0]
    assert series["width"] == 1 and series["steps"] == list(range(140, 161))
    assert series["values"][10] == 42.0


def test_keys_lists_what_the_job_logged(
    team: Team, make_job: MakeJob, files: LocalRunFiles, run_file: bytes
) -> None:
    job = make_job()
    files.place(job, run_file)
    ingest.ingest_job(job, files)

    response = team.client("member").get(KEYS, {"job": str(job.pk)})

    assert response.status_code == 200
    assert response.json()["keys"] == [
        "perf/tokens_per_s",
        "train/epoch",
        "train/global_step",
        "train/grad_norm",
        "train/learning_rate",
        "train/loss",
        "train/num_input_tokens_seen",
    ]


def test_anonymous_users_are_refused(team: Team, make_job: MakeJob) -> None:
    job = make_job()
    for url in (SERIES, KEYS):
        response = team.client("anon").get(url, {"job": str(job.pk), "key": "train/loss"})
        assert response.status_code in (401, 403)
        assert "series" not in response.content.decode() and "keys" not in response.content.decode()


def test_an_inactive_account_is_refused(team: Team, make_job: MakeJob) -> None:
    job = make_job()
    client = team.client("member")
    team.users["member"].is_active = False
    team.users["member"].save(update_fields=["is_active"])
    assert client.get(SERIES, {"job": str(job.pk), "key": "train/loss"}).status_code in (401, 403)


def test_unknown_jobs_and_bad_queries(team: Team, make_job: MakeJob) -> None:
    job = make_job()
    client = team.client("member")
    assert client.get(SERIES, {"job": str(uuid.uuid4()), "key": "train/loss"}).status_code == 404
    assert client.get(SERIES, {"job": "not-a-uuid", "key": "train/loss"}).status_code == 400
    assert client.get(SERIES, {"job": str(job.pk)}).status_code == 400  # no key
    assert client.get(SERIES, {"key": "train/loss"}).status_code == 400  # no job
    too_many: dict[str, Any] = {"job": str(job.pk), "key": "k", "points": 10**6}
    assert client.get(SERIES, too_many).status_code == 400
    assert client.get(SERIES, {"job": [str(job.pk)] * 13, "key": "k"}).status_code == 400


def test_a_reload_gets_304_until_new_points_arrive(
    team: Team, make_job: MakeJob, files: LocalRunFiles, run_file: bytes
) -> None:
    job = make_job()
    path = files.place(job, run_file)
    files.visible[path] = wandb_file.parse(run_file[: len(run_file) // 2]).offset
    ingest.ingest_job(job, files)
    client = team.client("member")
    query: dict[str, Any] = {"job": str(job.pk), "key": "train/loss"}

    first = client.get(SERIES, query)
    etag = first.headers["ETag"]
    assert first.status_code == 200 and first.headers["Last-Modified"]
    assert "no-cache" in first.headers["Cache-Control"] and "private" in first.headers["Cache-Control"]

    again = client.get(SERIES, query, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == etag
    assert client.get(SERIES, {**query, "key": "train/grad_norm"}, HTTP_IF_NONE_MATCH=etag).status_code == 200

    files.visible[path] = len(run_file)
    ingest.ingest_job(job, files)
    after = client.get(SERIES, query, HTTP_IF_NONE_MATCH=etag)
    assert after.status_code == 200 and after.headers["ETag"] != etag
    assert after.json()["series"][0]["steps"][-1] == 300


def test_finished_series_are_cached_long_and_gzipped(
    team: Team, make_job: MakeJob, files: LocalRunFiles, run_file: bytes
) -> None:
    job = make_job(state="completed")
    files.place(job, run_file)
    ingest.ingest_job(job, files)
    MetricCursor.objects.filter(job=job).update(final=True)
    client = team.client("member")
    query: dict[str, Any] = {"job": str(job.pk), "key": "train/loss", "points": 5000}

    plain = client.get(SERIES, query)
    zipped = client.get(SERIES, query, HTTP_ACCEPT_ENCODING="gzip")

    assert "max-age=86400" in plain.headers["Cache-Control"]
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(zipped.content)) == plain.json()
    assert len(zipped.content) < len(plain.content) / 2
