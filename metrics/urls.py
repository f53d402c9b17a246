"""Web pages of the metrics app, included by portal/urls.py."""

from typing import Any

urlpatterns: list[Any] = []
