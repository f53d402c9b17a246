"""Anonymous users see only the sign-in page (and static files, the language switch, the health check);
the API answers a request it cannot read in JSON."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import resolve_url
from django.utils.translation import gettext as _

log = logging.getLogger("portal")


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


class ApiRequestErrorsMiddleware:
    """Under /api/, a body the API cannot read gets a JSON answer (`{"detail": …}`), not Django's HTML page:

    - over DATA_UPLOAD_MAX_MEMORY_SIZE (JSON, form or multipart fields; uploaded files have their own
      limits): 413;
    - more form fields than DATA_UPLOAD_MAX_NUMBER_FIELDS: 400;
    - JSON nested deeper than Python's parser recurses (`[[[[…]]]]`): 400.

    Malformed JSON is DRF's own 400 (`JSON parse error …`)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path_info.startswith("/api/"):
            return None
        if isinstance(exception, RequestDataTooBig):
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            detail = _("The request body is larger than %(n)d bytes.") % {"n": limit}
            return JsonResponse({"detail": detail}, status=413)
        if isinstance(exception, TooManyFieldsSent):
            detail = _("The request has too many fields.")
            return JsonResponse({"detail": detail}, status=400)
        if isinstance(exception, RecursionError) and "json" in (request.content_type or ""):
            log.warning("%s: a JSON body nested too deeply", request.path_info)
            return JsonResponse({"detail": _("The JSON body is nested too deeply.")}, status=400)
        return None
