"""The booking form. What a booking may ask for is decided by `services.validate`; the form parses the
fields and shows the service's errors next to them."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from portal import access
from portal.forms import model_choice
from portal.models import Subteam
from scheduler.models import Cluster

WINDOW_INPUT = ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]


class DateTimeLocal(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%Y-%m-%dT%H:%M", **kwargs)


class ReservationForm(forms.Form):
    cluster = forms.ModelChoiceField(queryset=Cluster.objects.none(), label=_("Cluster"))
    subteam = forms.ModelChoiceField(queryset=Subteam.objects.none(), label=_("Subteam"))
    gpus = forms.IntegerField(
        label=_("GPUs"),
        required=False,
        min_value=1,
        help_text=_("Whole nodes are reserved: 8 GPUs per node."),
    )
    gpu_type = forms.CharField(label=_("GPU type"), max_length=32, required=False, help_text=_("Empty: any."))
    nodes = forms.CharField(
        label=_("Or specific nodes"),
        max_length=500,
        required=False,
        help_text=_("Node names separated by commas, e.g. node4."),
    )
    start = forms.DateTimeField(label=_("Start"), input_formats=WINDOW_INPUT, widget=DateTimeLocal())
    end = forms.DateTimeField(label=_("End"), input_formats=WINDOW_INPUT, widget=DateTimeLocal())
    purpose = forms.CharField(label=_("Purpose"), max_length=200)

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        model_choice(self, "subteam").queryset = access.subteams_for(user)
        model_choice(self, "cluster").queryset = Cluster.objects.filter(is_active=True)

    def clean_nodes(self) -> list[str]:
        text: str = self.cleaned_data.get("nodes") or ""
        return [name.strip() for name in text.replace(" ", ",").split(",") if name.strip()]

    def clean(self) -> dict[str, Any]:
        """A window that ends before it starts is told at once, next to the end, whatever else is
        missing (the service says the same when it is reached)."""
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        if start is not None and end is not None and end <= start:
            self.add_error("end", _("The end must be after the start."))
        return data


class DecisionForm(forms.Form):
    note = forms.CharField(
        label=_("Note"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )


class BulkDecisionForm(forms.Form):
    """Approve or reject the bookings ticked in the list (a rejection needs its reason)."""

    action = forms.ChoiceField(choices=[("approve", _("Approve")), ("reject", _("Reject"))])
    note = forms.CharField(label=_("Note"), required=False, max_length=2000)


class WindowForm(forms.Form):
    """Move or resize a booking."""

    start = forms.DateTimeField(label=_("Start"), input_formats=WINDOW_INPUT, widget=DateTimeLocal())
    end = forms.DateTimeField(label=_("End"), input_formats=WINDOW_INPUT, widget=DateTimeLocal())
