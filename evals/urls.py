"""Web pages of the evals app, included by portal/urls.py."""

from typing import Any

urlpatterns: list[Any] = []
