"""Web pages of the slackbot app, included by portal/urls.py."""

from typing import Any

urlpatterns: list[Any] = []
