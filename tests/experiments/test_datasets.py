"""Data sets without a cluster: the check script run for real by the local shell (file, directory, missing,
odd names), its answer parsed, registrations refused before anything is recorded, a re-check whose hash
differs changes nothing but the mark, and the training form's hook (names → paths, refusals)."""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.exceptions import ValidationError

from experiments import datasets
from experiments.models import Dataset
from scheduler import services, training_jobs
from scheduler.models import Cluster
from tests.experiments.helpers import dataset, fake_cluster, sft, spec
from tests.personas import Team


def run_check(path: Path, out: Path) -> datasets.Found:
    """The detached check, started by the same shell line the worker sends, read once it is written."""
    subprocess.run(["sh", "-c", datasets.start_command(str(path), str(out))], check=True, timeout=30)
    deadline = time.monotonic() + 30
    while not out.exists():
        assert time.monotonic() < deadline, "the check wrote no answer"
        time.sleep(0.05)
    found = datasets.parse_result(out.read_text())
    assert found is not None
    return found


def test_a_files_hash_rows_and_size_are_those_of_the_file(tmp_path: Path) -> None:
    data = tmp_path / "odd name; $(touch pwned) 'q'.jsonl"
    content = b'{"text": "a"}\n{"text": "b"}\n{"text": "\xe3\x81\x82"}\n'
    data.write_bytes(content)
    found = run_check(data, tmp_path / "checks" / "1-0.out")
    assert found.sha256 == hashlib.sha256(content).hexdigest()
    assert (found.rows, found.size, found.files, found.is_directory) == (3, len(content), 1, False)
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
    assert oct((tmp_path / "checks").stat().st_mode & 0o777) == "0o700"


def test_a_directorys_hash_is_its_sorted_manifests(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    (root / "b").mkdir(parents=True)
    files = {"a.jsonl": b"1\n2\n", "b/c.jsonl": b"3\n", "b/d.parquet": b"PAR1", ".hidden": b"x"}
    for name, content in files.items():
        (root / name).write_bytes(content)
    found = run_check(root, tmp_path / "2-0.out")
    listed = sorted(name for name in files if not name.startswith("."))
    manifest = "".join(f"{hashlib.sha256(files[n]).hexdigest()}  ./{n}\n" for n in listed)
    assert found.sha256 == hashlib.sha256(manifest.encode()).hexdigest()
    assert (found.rows, found.files, found.size, found.is_directory) == (3, 3, 10, True)
    (root / "b" / "c.jsonl").write_bytes(b"3\n4\n")  # any change moves the hash
    assert run_check(root, tmp_path / "3-0.out").sha256 != found.sha256


def test_a_missing_path_says_so(tmp_path: Path) -> None:
    found = run_check(tmp_path / "nope.jsonl", tmp_path / "4-0.out")
    assert found.missing and not found.sha256


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "kind file\nsha256 " + "a" * 64 + "\nsize 10\nfiles 1\njsonl 1\nrows 2\n",
            None,
        ),  # no "end": still running
        ("kind file\nsha256 " + "a" * 64 + "\nsize 10\nfiles 1\njsonl 0\nend\n", ("a" * 64, 10, None)),
        ("kind dir\nsha256 nothex\nend\n", ("", None, None)),
        ("error cannot read the file\n", ("", None, None)),
    ],
)
def test_parsing_the_answer(text: str, expected: tuple[str, int | None, int | None] | None) -> None:
    found = datasets.parse_result(text)
    if expected is None:
        assert found is None
        return
    assert found is not None
    assert (found.sha256, found.size, found.rows) == expected
    if not found.sha256:
        assert found.error


# --- registering and re-checking ------------------------------------------------------------------------


@pytest.fixture
def cluster(team: Team) -> Cluster:
    return fake_cluster(team)


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"name": "bad name"}, "name", "letters, digits"),
        ({"version": ""}, "version", "1-40"),
        ({"path": "relative/data.jsonl"}, "path", "absolute path"),
        ({"path": "/data/../etc/passwd"}, "path", "“..”"),
        ({"path": "/data/x\n.jsonl"}, "path", "Control characters"),
        ({"notes": "x" * 5000}, "notes", "5000"),
    ],
)
@pytest.mark.django_db
def test_registrations_refused_before_the_cluster_is_asked(
    team: Team, cluster: Cluster, fields: dict[str, Any], field: str, words: str
) -> None:
    values: dict[str, Any] = {
        "name": "ichikara",
        "version": "v1",
        "path": "/data/sft/ichikara.jsonl",
        "notes": "",
    }
    values.update(fields)
    with pytest.raises(ValidationError) as caught:
        datasets.register(
            team.member("member"), datasets.Registration(subteam=team.sft, cluster=cluster, **values)
        )
    assert any(words in m for m in caught.value.message_dict[field]), caught.value.message_dict
    assert Dataset.objects.count() == 0


@pytest.mark.django_db
def test_the_same_version_at_another_path_is_refused(team: Team, cluster: Cluster) -> None:
    dataset(team, cluster, "ichikara", "v1")
    with pytest.raises(ValidationError) as caught:
        datasets.register(
            team.member("member"),
            datasets.Registration(team.sft, cluster, "ichikara", "v1", "/data/sft/other.jsonl"),
        )
    assert "give this one a new version" in caught.value.message_dict["version"][0]
    with pytest.raises(ValidationError) as caught:  # another subteam cannot have it checked again
        datasets.register(
            team.member("other"),
            datasets.Registration(team.pretrain, cluster, "ichikara", "v1", "/data/sft/ichikara-v1.jsonl"),
        )
    assert caught.value.message_dict["version"] == [
        "ichikara@v1 is Fine-tuning's: only its members check it again."
    ]
    assert not Dataset.objects.get().recheck


@pytest.mark.django_db
def test_a_recheck_with_another_hash_marks_the_version_changed_and_keeps_what_was_recorded(
    team: Team, cluster: Cluster
) -> None:
    d = dataset(team, cluster, "ichikara", "v1", recheck=True)
    registered = d.sha256
    datasets._apply(d, datasets.Found(sha256="b" * 64, size=1, rows=1, files=1))
    d.refresh_from_db()
    assert d.state == Dataset.State.CHANGED and d.sha256 == registered and d.rows == 1000
    assert "Hash mismatch" in d.check_message and "bbbbbbbbbbbb" in d.check_message
    d.recheck = True
    d.state = Dataset.State.READY
    d.save()
    datasets._apply(d, datasets.Found(sha256=registered, size=1, rows=1, files=1))
    d.refresh_from_db()
    assert (
        d.state == Dataset.State.READY and d.check_message == "Checked again: unchanged." and d.rows == 1000
    )


@pytest.mark.django_db
def test_a_first_check_fills_the_record(team: Team, cluster: Cluster) -> None:
    d = dataset(
        team, cluster, "new", "v1", state=Dataset.State.CHECKING, sha256="", rows=None, size_bytes=None
    )
    datasets._apply(d, datasets.Found(sha256="c" * 64, size=2048, rows=12, files=1))
    d.refresh_from_db()
    assert (d.state, d.sha256, d.size_bytes, d.rows) == (Dataset.State.READY, "c" * 64, 2048, 12)
    missing = dataset(team, cluster, "gone", "v1", state=Dataset.State.CHECKING, sha256="")
    datasets._apply(missing, datasets.Found(missing=True))
    missing.refresh_from_db()
    assert missing.state == Dataset.State.MISSING


# --- picked by training forms ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_training_job_names_data_sets_and_records_which_versions_it_read(
    team: Team, cluster: Cluster
) -> None:
    v2 = dataset(team, cluster, "ichikara", "v2")
    job = services.submit_job(
        team.member("member"), spec(team, cluster, sft(train_files=[], datasets=["ichikara@v2"]))
    )
    config = yaml.safe_load(job.config_yaml)
    assert config["data"]["train_files"] == [v2.path]
    assert job.parameters["datasets"] == [
        {"id": v2.pk, "ref": "ichikara@v2", "path": v2.path, "sha256": v2.sha256}
    ]
    assert ("ichikara@v2", "ichikara@v2 · fake · 1,000 rows") in datasets.choices()


@pytest.mark.django_db
def test_data_sets_a_job_may_not_name_are_refused_with_why(team: Team, cluster: Cluster) -> None:
    dataset(team, cluster, "checking", "v1", state=Dataset.State.CHECKING)
    dataset(team, cluster, "corpus", "v1", is_directory=True, path="/data/corpus")
    other = Cluster.objects.create(
        name="other", host="127.0.0.1", port=1, username="x", work_dir="/scratch/{user}"
    )
    dataset(team, other, "elsewhere", "v1")
    request = sft(datasets=["nope@v1", "checking@v1", "corpus@v1", "elsewhere@v1"])
    errors = training_jobs.check(request, nodes=1, gpus_per_node=1, cluster=cluster)
    assert errors["datasets"] == [
        "nope@v1 is not a registered data set.",
        "checking@v1: Checking on the cluster.",
        "corpus@v1 is not a .jsonl, .json or .parquet file.",
        "elsewhere@v1 is on other, not on fake.",
    ]
    bad = training_jobs.check(sft(datasets=["no version"]), nodes=1, gpus_per_node=1, cluster=cluster)
    assert bad["datasets"] == ["no version: name a data set as name@version."]


@pytest.mark.django_db
def test_the_training_form_offers_ready_data_sets_to_pick(team: Team, cluster: Cluster) -> None:
    dataset(team, cluster, "ichikara", "v3")
    dataset(team, cluster, "hidden", "v1", state=Dataset.State.CHANGED)
    page = team.client("member").get("/jobs/train/?kind=sft").content.decode()
    assert '<option value="ichikara@v3">' in page and "hidden@v1" not in page


@pytest.mark.django_db
def test_pages_and_api_list_data_sets_and_refuse_other_subteams(team: Team, cluster: Cluster) -> None:
    d = dataset(team, cluster, "ichikara", "v1")
    client = team.client("other")
    assert "ichikara@v1" in client.get("/datasets/").content.decode()
    assert d.sha256 in client.get(d.get_absolute_url()).content.decode()
    response = client.post(
        "/datasets/new/",
        {
            "subteam": team.sft.pk,
            "cluster": cluster.pk,
            "name": "x",
            "version": "v1",
            "path": "/data/x.jsonl",
        },
    )
    assert response.status_code == 403
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(team.users["other"])
    refused = api.post(
        "/api/v1/datasets/",
        {"subteam": "sft", "cluster": cluster.pk, "name": "x", "version": "v1", "path": "/data/x.jsonl"},
        format="json",
    )
    assert refused.status_code == 403
    listed = api.get("/api/v1/datasets/?subteam=sft").json()
    assert [row["ref"] for row in listed["results"]] == ["ichikara@v1"]
    assert Dataset.objects.count() == 1
