"""Web pages of the lending app, included by portal/urls.py."""

from typing import Any

urlpatterns: list[Any] = []
