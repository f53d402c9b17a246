from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from reports.models import WeeklyReport


class ReportForm(forms.Form):
    """The lead's part of a report. `revision` is the one the form was opened at (see `services.edit`)."""

    body = forms.CharField(
        label=_("Report"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 12}),
        help_text=WeeklyReport._meta.get_field("body").help_text,
    )
    issues = forms.CharField(
        label=_("Issues for the management meeting"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text=WeeklyReport._meta.get_field("issues").help_text,
    )
    revision = forms.IntegerField(widget=forms.HiddenInput, min_value=0)
