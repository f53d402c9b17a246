"""One declaration per training field and one list of kinds: the web form, the API serializer and the
request are all built from `TrainingRequest`'s declarations, and every kind group comes from `Job.Kind`."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import pytest

from scheduler import training_forms, training_jobs
from scheduler.api.serializers import TrainingSerializer
from scheduler.models import Job
from scheduler.training_jobs import TrainingField, TrainingRequest, declare
from training import config as training_config

RESOURCES = set(training_forms.resource_fields())


def form_names(kind: str) -> set[str]:
    return set(training_forms.TrainingStepForm(kind=kind).fields) - RESOURCES


def declared_names(kind: str | None = None) -> set[str]:
    return {declared.name for declared in training_jobs.declared_fields(kind)}


def posted(form: training_forms.TrainingStepForm, **values: Any) -> dict[str, Any]:
    """What a browser posts for the form as it first shows, with `values` typed over it."""
    data = {name: field.initial for name, field in form.fields.items() if field.initial is not None}
    return {**data, **values}


# --- kinds ------------------------------------------------------------------------------------------------


def test_the_kind_groups_come_from_job_kind() -> None:
    assert set(Job.Kind.training_kinds()) == set(Job.Kind.values) - {Job.Kind.CUSTOM}
    assert set(Job.Kind.kinds_that_train()) == {"pretrain", "sft", "dpo"}
    assert set(training_jobs.ENTRY_POINTS) == set(Job.Kind.training_kinds())
    # The training package on the cluster keeps its own list (it imports nothing of the portal).
    trains = {training_jobs.ENTRY_POINTS[kind] for kind in Job.Kind.kinds_that_train()}
    assert trains == set(training_config.TRAINING_KINDS)


@pytest.mark.parametrize(
    ("kind", "is_training", "trains"),
    [
        ("custom", False, False),
        ("pretrain", True, True),
        ("sft", True, True),
        ("dpo", True, True),
        ("eval", True, False),
    ],
)
def test_a_job_knows_whether_it_runs_the_training_package_and_whether_it_trains(
    kind: str, is_training: bool, trains: bool
) -> None:
    job = Job(kind=kind)
    assert (job.is_training, job.trains) == (is_training, trains)
    assert TrainingRequest(kind=kind).trains is trains


# --- fields -----------------------------------------------------------------------------------------------


def test_the_form_the_api_and_the_request_have_the_declared_fields() -> None:
    request_names = {f.name for f in fields(TrainingRequest)} - {"kind"}
    assert declared_names() == request_names
    assert set(TrainingSerializer().fields) == request_names
    assert set(training_forms.training_fields()) == request_names
    for kind in Job.Kind.training_kinds():
        form = training_forms.TrainingStepForm(kind=kind)
        assert form_names(kind) == declared_names(kind), kind
        shown = {bound.name for _legend, bound_fields in form.sections() for bound in bound_fields}
        assert shown == declared_names(kind), kind  # every field sits in a section of the page


def test_a_kind_shows_only_the_fields_it_uses() -> None:
    assert "dpo_beta" in form_names("dpo") and "dpo_beta" not in form_names("sft")
    assert "questions" in form_names("eval") and "train_files" not in form_names("eval")
    assert "model" in form_names("eval") and "model" in form_names("pretrain")


@dataclass
class WithSeed(TrainingRequest):
    seed: int = declare(
        7, TrainingField("Seed", Job.Kind.kinds_that_train(), "hyperparameters", api_help="The run's seed.")
    )


@pytest.fixture
def seed_declared(monkeypatch: pytest.MonkeyPatch) -> None:
    """TrainingRequest with one more declared field, the way a new hyperparameter is added."""
    monkeypatch.setattr(training_jobs, "TrainingRequest", WithSeed)


@pytest.mark.usefixtures("seed_declared")
def test_one_more_declaration_reaches_the_form_the_api_and_the_request() -> None:
    form = training_forms.TrainingStepForm(kind="sft")
    assert form.fields["seed"].initial == 7 and str(form.fields["seed"].label) == "Seed"
    assert "seed" in [bound.name for _legend, bound_fields in form.sections() for bound in bound_fields]
    assert "seed" not in form_names("eval")
    bound = training_forms.TrainingStepForm(posted(form, seed="3", train_files="/data/a.jsonl"), kind="sft")
    assert bound.is_valid(), bound.errors
    request = bound.request()
    assert isinstance(request, WithSeed) and request.seed == 3
    assert request.train_files == ["/data/a.jsonl"]

    serializer = TrainingSerializer(data={"seed": 5})
    assert serializer.is_valid(), serializer.errors
    from_api = serializer.request_for("sft", serializer.validated_data)
    assert isinstance(from_api, WithSeed) and from_api.seed == 5
    assert serializer.fields["seed"].help_text == "The run's seed."
    defaulted = TrainingSerializer(data={})
    assert defaulted.is_valid() and defaulted.request_for("sft", defaulted.validated_data).seed == 7

    stored = request.as_dict()
    assert stored["seed"] == 3 and WithSeed.from_dict(stored) == request


def test_the_form_and_the_api_make_the_same_request() -> None:
    form = training_forms.TrainingStepForm(kind="sft")
    values = {"model": "/m", "train_files": "/d/a.jsonl\n/d/b.jsonl", "wandb_tags": "a, b c", "lora": "on"}
    bound = training_forms.TrainingStepForm(posted(form, **values), kind="sft")
    assert bound.is_valid(), bound.errors
    api = TrainingSerializer(
        data={
            "model": "/m",
            "train_files": ["/d/a.jsonl", "/d/b.jsonl"],
            "wandb_tags": ["a", "b", "c"],
            "lora": True,
        }
    )
    assert api.is_valid(), api.errors
    assert bound.request() == api.request_for("sft", api.validated_data)
