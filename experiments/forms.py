"""The data set registration form and the sweep form (its training fields are the training form's)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from experiments import sweeps
from experiments.models import Dataset, Sweep
from portal import access
from portal.models import Subteam
from scheduler.models import Cluster

MONO = {"class": "mono", "spellcheck": "false", "autocomplete": "off"}
AXES = 3  # rows of varied fields on the form


class DatasetForm(forms.Form):
    subteam = forms.ModelChoiceField(queryset=Subteam.objects.none(), label=_("Subteam"))
    cluster = forms.ModelChoiceField(queryset=Cluster.objects.filter(is_active=True), label=_("Cluster"))
    name = forms.CharField(label=_("Name"), max_length=100, widget=forms.TextInput(attrs=MONO))
    version = forms.CharField(
        label=_("Version"),
        max_length=40,
        help_text=_("e.g. v3 or 2026-12-01"),
        widget=forms.TextInput(attrs=MONO),
    )
    path = forms.CharField(
        label=_("Path on the cluster"),
        max_length=1000,
        help_text=_("A .jsonl/.json/.parquet file (usable in training forms) or a directory."),
        widget=forms.TextInput(attrs=MONO),
    )
    derived_from = forms.ModelChoiceField(
        queryset=Dataset.objects.order_by("name", "-created_at"), required=False, label=_("Derived from")
    )
    notes = forms.CharField(
        label=_("Notes"), required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 3})
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["subteam"].queryset = access.subteams_for(user)  # type: ignore[attr-defined]


class SweepForm(forms.Form):
    """The sweep's own fields: its name, how the axes combine, the varied fields, the evaluation."""

    sweep_name = forms.CharField(
        label=_("Sweep name"),
        max_length=56,
        help_text=_("Its runs are named after it: name-01, name-02, …"),
        widget=forms.TextInput(attrs=MONO),
    )
    mode = forms.ChoiceField(label=_("Combine"), choices=Sweep.Mode.choices, initial=Sweep.Mode.GRID)
    with_eval = forms.BooleanField(label=_("Evaluate each run with MT-Bench"), required=False, initial=True)

    def __init__(self, *args: Any, kind: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [("", "—")] + [(d.name, f"{d.how.label} ({d.name})") for d in sweeps.sweepable(kind)]
        for i in range(1, AXES + 1):
            self.fields[f"axis{i}_field"] = forms.ChoiceField(
                label=_("Field"), choices=choices, required=False
            )
            self.fields[f"axis{i}_values"] = forms.CharField(
                label=_("Values"),
                required=False,
                max_length=2000,
                help_text=_("Separated by commas or spaces, e.g. 1e-5, 2e-5"),
                widget=forms.TextInput(attrs=MONO),
            )

    def axis_rows(self) -> list[tuple[forms.BoundField, forms.BoundField]]:
        return [(self[f"axis{i}_field"], self[f"axis{i}_values"]) for i in range(1, AXES + 1)]

    def axes(self) -> list[tuple[str, list[Any]]]:
        data = self.cleaned_data
        found = []
        for i in range(1, AXES + 1):
            field, values = data.get(f"axis{i}_field") or "", data.get(f"axis{i}_values") or ""
            if field or values.strip():
                found.append((field or "?", list(sweeps.split_values(values))))
        return found
