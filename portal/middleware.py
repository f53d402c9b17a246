"""Anonymous users see only the sign-in page (and static files, the language switch, the health check)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url


class LoginRequiredEverywhereMiddleware:
    """Paths in `LOGIN_EXEMPT_PREFIXES` stay open; the API (`/api/`) answers 401/403 itself through DRF's
    permission classes."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        static = "/" + settings.STATIC_URL.lstrip("/")
        if (
            request.user.is_authenticated
            or path.startswith(tuple(settings.LOGIN_EXEMPT_PREFIXES))
            or path.startswith(static)
        ):
            return self.get_response(request)
        if path.startswith("/admin/"):
            return self.get_response(request)  # the admin has its own login page
        if getattr(request, "htmx", False):
            response = HttpResponse(status=401)
            response["HX-Redirect"] = resolve_url(settings.LOGIN_URL)
            return response
        return redirect_to_login(request.get_full_path())
