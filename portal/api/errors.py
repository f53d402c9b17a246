"""Turn the errors raised by `portal.services` into DRF 400 responses with field errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers
from rest_framework.settings import api_settings

from portal import services


def field_errors(exc: DjangoValidationError) -> dict[str, list[str]]:
    """`{field: [message, …]}` from a Django ValidationError, with `__all__` renamed `non_field_errors`."""
    if hasattr(exc, "error_dict"):
        return {
            (api_settings.NON_FIELD_ERRORS_KEY if field == NON_FIELD_ERRORS else field): messages
            for field, messages in exc.message_dict.items()
        }
    return {api_settings.NON_FIELD_ERRORS_KEY: list(exc.messages)}


@contextmanager
def service_errors(service_error_field: str | None = None) -> Iterator[None]:
    """Run a service call; its ValidationError (from full_clean) and ServiceError become a 400.

    A ServiceError is reported on `service_error_field` when given, otherwise as a non-field error.
    """
    try:
        yield
    except DjangoValidationError as exc:
        raise serializers.ValidationError(field_errors(exc)) from exc
    except services.ServiceError as exc:
        raise serializers.ValidationError(
            {service_error_field or api_settings.NON_FIELD_ERRORS_KEY: [str(exc)]}
        ) from exc
