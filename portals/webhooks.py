"""The webhook pipeline: from an HTTP request to an audited outcome.

Order: portal (404) -> size (413) -> header key and signature (401) -> media type and
body (415/400) -> body-field key (401) -> per-portal rate (429) -> mapping, validation
and storage (400/201). Repeated 401s from one address become 429s. Every path
records a Reception; secrets never reach it.
"""

import json
import logging
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from leadmarket.api.client import client_ip
from leadmarket.api.ratelimit import Limit, hit

from . import services
from .models import KeyLocation, Portal, Reception, ReceptionOutcome, SignatureScheme
from .payloads import InvalidBody, UnsupportedBody, parse_body
from .selectors import active_portal
from .signatures import SignatureError, verify_single, verify_standard

logger = logging.getLogger(__name__)

IDEMPOTENCY_KEY_MAX_LENGTH = Reception._meta.get_field("idempotency_key").max_length
KEPT_HEADERS = ("content-type", "content-length", "user-agent", "idempotency-key", "webhook-id", "webhook-timestamp")
MESSAGES = {
    ReceptionOutcome.ACCEPTED: "Lead received.",
    ReceptionOutcome.DUPLICATE_LEAD: "Lead received (duplicate of an earlier lead).",
    ReceptionOutcome.DUPLICATE_RESENT: "Lead already received.",
    ReceptionOutcome.INVALID: "Invalid lead.",
    ReceptionOutcome.UNAUTHORIZED: "Invalid or missing credentials.",
    ReceptionOutcome.NOT_FOUND: "Unknown portal.",
    ReceptionOutcome.TOO_LARGE: "Request body is too large.",
    ReceptionOutcome.UNSUPPORTED: "Unsupported media type.",
    ReceptionOutcome.THROTTLED: "Too many requests.",
    ReceptionOutcome.ERROR: "Internal server error.",
}


@dataclass
class WebhookResponse:
    status_code: int
    outcome: str
    data: dict | None = None
    errors: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)

    @property
    def message(self) -> str:
        return MESSAGES[self.outcome]


class Rejected(Exception):
    def __init__(self, status_code: int, outcome: str, errors=None, headers=None):
        self.status_code, self.outcome = status_code, outcome
        self.errors, self.headers = errors or {}, headers or {}


def _headers(request) -> dict[str, str]:
    return {name: request.headers[name][:255] for name in KEPT_HEADERS if name in request.headers}


def _storable_text(body: bytes, limit: int) -> tuple[str, bool]:
    text = body[:limit].decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    return text, len(body) > limit


def _redacted(payload: dict, portal: Portal, limit: int) -> tuple[dict | None, str, bool]:
    hidden = set(portal.redact_fields or [])
    if portal.key_field:
        hidden.add(portal.key_field)
    kept = {key: value for key, value in payload.items() if key not in hidden}
    encoded = json.dumps(kept, ensure_ascii=False)
    if len(encoded.encode()) > limit:
        return None, encoded.encode()[:limit].decode("utf-8", errors="ignore"), True
    return kept, "", False


def _authenticate_header(portal_config, request, body: bytes, now: float) -> None:
    portal = portal_config.portal
    if portal.key_location == KeyLocation.HEADER and not services.key_matches(
        request.headers.get("X-API-Key", ""), portal_config.key_hashes
    ):
        raise Rejected(401, ReceptionOutcome.UNAUTHORIZED, {"api_key": ["Invalid or missing API key."]})
    try:
        if portal.signature_scheme == SignatureScheme.STANDARD_WEBHOOKS:
            headers = {name: request.headers.get(name, "") for name in ("webhook-id", "webhook-timestamp")}
            headers["webhook-signature"] = request.headers.get("webhook-signature", "")
            verify_standard(secret=portal.signing_secret, headers=headers, body=body, now=now)
        elif portal.signature_scheme == SignatureScheme.SINGLE_HEADER:
            verify_single(
                secret=portal.signing_secret,
                header_value=request.headers.get(portal.signature_header, ""),
                body=body,
                encoding=portal.signature_encoding,
                prefix=portal.signature_prefix,
            )
    except SignatureError as exc:
        raise Rejected(401, ReceptionOutcome.UNAUTHORIZED, {"signature": [str(exc)]}) from exc


def _read_body(request) -> bytes:
    limit = settings.WEBHOOK_MAX_BODY_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise Rejected(413, ReceptionOutcome.TOO_LARGE, {"body": [f"At most {limit} bytes."]})
    try:
        body = request.body
    except RequestDataTooBig as exc:
        raise Rejected(413, ReceptionOutcome.TOO_LARGE, {"body": [f"At most {limit} bytes."]}) from exc
    if len(body) > limit:
        raise Rejected(413, ReceptionOutcome.TOO_LARGE, {"body": [f"At most {limit} bytes."]})
    return body


def handle_webhook(request, portal_code: str) -> WebhookResponse:
    """Runs the pipeline for one request and returns what to answer; always audited."""
    started = time.perf_counter()
    now = timezone.now()
    ip = client_ip(request)
    record = services.ReceptionRecord(portal_code=portal_code, received_at=now, client_ip=ip, headers=_headers(request))
    stored_limit = settings.RECEPTION_PAYLOAD_MAX_BYTES

    def elapsed_ms() -> int:
        return int((time.perf_counter() - started) * 1000)

    body = b""
    try:
        config = active_portal(portal_code)
        if config is None:
            raise Rejected(404, ReceptionOutcome.NOT_FOUND)
        portal = record.portal = config.portal
        body = _read_body(request)
        idempotency_key = request.headers.get("Idempotency-Key", "").strip()
        if not idempotency_key and portal.signature_scheme == SignatureScheme.STANDARD_WEBHOOKS:
            idempotency_key = request.headers.get("webhook-id", "").strip()
        # The reception keeps what fits its column: the refusal is audited like any other.
        record.idempotency_key = idempotency_key[:IDEMPOTENCY_KEY_MAX_LENGTH]
        if len(idempotency_key) > IDEMPOTENCY_KEY_MAX_LENGTH:
            errors = {"idempotency_key": [f"At most {IDEMPOTENCY_KEY_MAX_LENGTH} characters."]}
            raise Rejected(400, ReceptionOutcome.INVALID, errors)

        failure_limit = Limit("webhook-auth-failures-ip", settings.WEBHOOK_AUTH_FAILURE_RATE_PER_IP)
        try:
            _authenticate_header(config, request, body, now.timestamp())
            try:
                payload = parse_body(body, request.META.get("CONTENT_TYPE", ""), json_form_field=portal.json_form_field)
            except UnsupportedBody as exc:
                raise Rejected(415, ReceptionOutcome.UNSUPPORTED, {"content_type": [str(exc)]}) from exc
            except InvalidBody as exc:
                raise Rejected(400, ReceptionOutcome.INVALID, {"body": [str(exc)]}) from exc
            if portal.key_location == KeyLocation.BODY_FIELD:
                presented = payload.get(portal.key_field)
                if not isinstance(presented, str) or not services.key_matches(presented, config.key_hashes):
                    raise Rejected(401, ReceptionOutcome.UNAUTHORIZED, {"api_key": ["Invalid or missing API key."]})
        except Rejected as rejected:
            # Guessing keys from one address is throttled; it never uses up the portal's own limit.
            if rejected.status_code == 401 and (wait := hit(request, failure_limit, ip or "unknown")):
                raise Rejected(429, ReceptionOutcome.THROTTLED, headers={"Retry-After": str(wait)}) from None
            raise
        # Counted after authentication, so strangers cannot exhaust a portal's limit.
        if wait := hit(request, Limit(f"webhook-portal-{portal.pk}", portal.rate_limit), "all"):
            raise Rejected(429, ReceptionOutcome.THROTTLED, headers={"Retry-After": str(wait)})
        record.payload, record.payload_text, record.payload_truncated = _redacted(payload, portal, stored_limit)
        hidden = {*(portal.redact_fields or []), portal.key_field} - {""}
        clean = {key: value for key, value in payload.items() if key not in hidden}
        result = services.ingest_payload(portal=portal, payload=clean, record=record, now=now, latency_ms=elapsed_ms)
    except Rejected as rejected:
        portal = record.portal
        secret_in_body = portal is not None and (portal.key_location == KeyLocation.BODY_FIELD or portal.redact_fields)
        if record.payload is None and rejected.outcome == ReceptionOutcome.INVALID and body and not secret_in_body:
            # Unparsed text cannot be redacted field by field: kept only when no secret rides in the body.
            record.payload_text, record.payload_truncated = _storable_text(body, stored_limit)
        services.record_reception(
            record=record,
            status_code=rejected.status_code,
            outcome=rejected.outcome,
            errors=rejected.errors,
            latency_ms=elapsed_ms(),
        )
        return WebhookResponse(rejected.status_code, rejected.outcome, errors=rejected.errors, headers=rejected.headers)
    except (OperationalError, InterfaceError):
        raise  # the view answers 503 with Retry-After (database_unavailable); nothing can be recorded
    except Exception:
        logger.exception("webhook for portal %s failed", portal_code)
        try:
            services.record_reception(
                record=record, status_code=500, outcome=ReceptionOutcome.ERROR, errors={}, latency_ms=elapsed_ms()
            )
        except Exception:
            logger.exception("could not record the failed reception")
        return WebhookResponse(500, ReceptionOutcome.ERROR)
    data = {"lead_id": result.lead.pk, "status": result.lead.status} if result.lead else None
    return WebhookResponse(result.status_code, result.outcome, data=data, errors=result.errors)
