"""The response envelope of every /api/ endpoint, produced in this one place.

success: {"success": true, "message": ..., "data": ..., "timestamp": ...}
failure: {"success": false, "message": ..., "errors": {...}, "timestamp": ...}
"""

from datetime import UTC, datetime

from django.http import JsonResponse
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

DEFAULT_MESSAGES = {200: "OK", 201: "Created", 202: "Accepted"}


def json_time(value: datetime | None) -> str | None:
    """A time as every response writes it: ISO 8601 in UTC with a `Z`, as DRF's DateTimeField
    writes it under TIME_ZONE = "UTC". For code that builds response dicts itself (list rows)."""
    if value is None:
        return None
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def timestamp() -> str:
    return json_time(datetime.now(UTC))


def success_body(data, message: str) -> dict:
    return {"success": True, "message": message, "data": data, "timestamp": timestamp()}


def failure_body(message: str, errors: dict | None = None) -> dict:
    return {"success": False, "message": message, "errors": errors or {}, "timestamp": timestamp()}


def ok(data=None, *, message: str | None = None, status: int = 200, headers=None) -> Response:
    """A success response; the renderer wraps `data` in the envelope."""
    response = Response(data, status=status, headers=headers)
    response.envelope_message = message
    return response


# As DRF's JSONRenderer writes it (compact, UTF-8), for responses built outside DRF.
_JSON_PARAMS = {"separators": (",", ":"), "ensure_ascii": False}


def failure_response(status: int, message: str, errors: dict | None = None, headers=None) -> JsonResponse:
    """An enveloped error for code that runs outside DRF (middleware, Django handlers, the webhook)."""
    return JsonResponse(failure_body(message, errors), status=status, headers=headers, json_dumps_params=_JSON_PARAMS)


def success_response(data, message: str, status: int = 200) -> JsonResponse:
    """An enveloped success for code that runs outside DRF (the webhook)."""
    return JsonResponse(success_body(data, message), status=status, json_dumps_params=_JSON_PARAMS)


class EnvelopeRenderer(JSONRenderer):
    """Wraps view data in the success envelope; errors arrive already enveloped."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        response = (renderer_context or {}).get("response")
        if response is not None and response.status_code < 400:
            message = getattr(response, "envelope_message", None)
            data = success_body(data, message or DEFAULT_MESSAGES.get(response.status_code, "OK"))
        return super().render(data, accepted_media_type, renderer_context)
