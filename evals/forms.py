"""Forms of the evals pages: importing FastChat judgment files and entering a baseline by hand."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from evals.models import CATEGORIES, CATEGORY_LABELS
from portal import access
from portal.models import Subteam

MAX_UPLOAD_BYTES = 50 * 1024 * 1024  # a full MT-Bench judgment file is a few MB


def _score_field(label: Any, required: bool) -> forms.FloatField:
    return forms.FloatField(
        label=label,
        required=required,
        min_value=0,
        max_value=10,
        widget=forms.NumberInput(attrs={"step": "0.01"}),
    )


class _SubteamForm(forms.Form):
    subteam: forms.ModelChoiceField[Subteam] = forms.ModelChoiceField(
        queryset=Subteam.objects.none(),  # set per user in __init__
        required=False,
        label=_("Subteam"),
        empty_label=_("Whole project"),
    )

    def __init__(self, *args: Any, user: Any, leading: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["subteam"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = access.subteams_for(user, leading=leading)


def _read(upload: Any) -> bytes:
    if upload.size > MAX_UPLOAD_BYTES:
        raise forms.ValidationError(_("The file is larger than 50 MB."))
    data: bytes = upload.read()
    return data


class ImportForm(_SubteamForm):
    judgments = forms.FileField(
        label=_("Judgments file"), help_text=_("FastChat's model_judgment/<judge>_single.jsonl")
    )
    questions = forms.FileField(
        label=_("Questions file"), help_text=_("The question.jsonl the answers were judged on")
    )
    model_name = forms.CharField(
        label=_("Model"),
        required=False,
        max_length=200,
        help_text=_("Import only this model's judgments (empty: every model in the file)."),
    )
    judge_model = forms.CharField(
        label=_("Judge"), required=False, max_length=100, help_text=_("Empty: as written in the file.")
    )
    question_set = forms.CharField(
        label=_("Question set"), required=False, max_length=200, help_text=_("e.g. japanese_mt_bench")
    )

    def clean_judgments(self) -> bytes:
        return _read(self.cleaned_data["judgments"])

    def clean_questions(self) -> bytes:
        return _read(self.cleaned_data["questions"])


class BaselineForm(_SubteamForm):
    model_name = forms.CharField(label=_("Model"), max_length=200)
    judge_model = forms.CharField(label=_("Judge"), required=False, max_length=100, help_text=_("e.g. gpt-4"))
    average = _score_field(_("Average"), True)
    notes = forms.CharField(
        label=_("Notes"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Where the figures come from."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, leading=True, **kwargs)
        for category in CATEGORIES:
            self.fields[category] = _score_field(CATEGORY_LABELS[category], False)

    @property
    def category_values(self) -> dict[str, float | None]:
        return {c: self.cleaned_data.get(c) for c in CATEGORIES}
