"""Keeps the OpenAPI schema true to the wire: every response in the envelope, and every
error status a view can produce documented with the failure shape.

Views describe their payloads with @extend_schema as usual; this hook wraps them. A view
declares the domain errors it raises (409, 404, ...) with `ERROR` as the response; the
errors every view of a kind can return (400/413/415 with a body, 401 with credentials,
403 for staff, 404 with path parameters, 429, 500) are added here.
"""

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ErrorEnvelopeSerializer(serializers.Serializer):
    success = serializers.BooleanField(default=False)
    message = serializers.CharField()
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))
    timestamp = serializers.DateTimeField()


ERROR = OpenApiResponse(ErrorEnvelopeSerializer, description="Failure envelope with field errors.")

ERROR_REF = {"$ref": "#/components/schemas/ErrorEnvelope"}
ERROR_SCHEMA = {
    "type": "object",
    "required": ["success", "message", "errors", "timestamp"],
    "properties": {
        "success": {"type": "boolean", "enum": [False]},
        "message": {"type": "string"},
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
            "description": 'Field errors, e.g. {"email": ["..."]}; nested fields joined with dots.',
        },
        "timestamp": {"type": "string", "format": "date-time"},
    },
}
STANDARD_ERRORS = {
    "400": "Invalid input: field errors in `errors`.",
    "401": "Missing, invalid or expired credentials.",
    "403": "Authenticated, but the role lacks the permission.",
    "404": "Unknown, or not the caller's.",
    "413": "Request body too large.",
    "415": "Body is not JSON.",
    "429": "Throttled; see the Retry-After header.",
    "500": "Unexpected fault (no details are disclosed).",
}


def _success(schema: dict) -> dict:
    return {
        "type": "object",
        "required": ["success", "message", "data", "timestamp"],
        "properties": {
            "success": {"type": "boolean", "enum": [True]},
            "message": {"type": "string"},
            "data": schema,
            "timestamp": {"type": "string", "format": "date-time"},
        },
    }


def _error_codes(operation: dict) -> set[str]:
    codes = {"429", "500"}
    if "requestBody" in operation:
        codes |= {"400", "413", "415"}
    schemes = {name for requirement in operation.get("security", []) for name in requirement}
    if schemes:
        codes.add("401")
    if "staffJWT" in schemes:
        codes.add("403")
    if any(parameter.get("in") == "path" for parameter in operation.get("parameters", [])):
        codes.add("404")
    return codes


def wrap_in_envelope(result, generator, request, public):
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("ErrorEnvelopeSerializer", None)  # views' ERROR declarations point here instead
    schemas["ErrorEnvelope"] = ERROR_SCHEMA
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/") or path.startswith(("/api/schema", "/api/docs", "/api/redoc")):
            continue
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for code, response in responses.items():
                if int(code) >= 400:
                    response["content"] = {"application/json": {"schema": ERROR_REF}}
                else:
                    content = response.setdefault("content", {"application/json": {"schema": {"nullable": True}}})
                    json = content.get("application/json")
                    if json is not None:
                        json["schema"] = _success(json.get("schema", {"nullable": True}))
            for code in _error_codes(operation):
                responses.setdefault(
                    code,
                    {"description": STANDARD_ERRORS[code], "content": {"application/json": {"schema": ERROR_REF}}},
                )
            operation["responses"] = dict(sorted(responses.items()))
    return result


def drop_trailing_slash_aliases(endpoints):
    """Each route also answers with a trailing slash; the schema lists the contract's path once."""
    return [endpoint for endpoint in endpoints if not endpoint[0].endswith("/")]
