"""Web pages of the metrics app, included by config/urls.py."""

from typing import Any

urlpatterns: list[Any] = []
