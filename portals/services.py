"""Write use cases of portals: configuration, keys, receptions, ingestion, replay, preview."""

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from audit.services import record_action, snapshot
from leadmarket import metrics
from leadmarket.bulk import insert_one
from leadmarket.errors import Conflict, NotFound
from leads.models import Lead
from leads.services import LeadCompanion, create_lead, find_resent_lead
from leads.standard import LEAD_FIELDS, normalize_lead

from . import mapping as mapping_engine
from .models import KeyLocation, Portal, PortalKey, Reception, ReceptionOutcome, SignatureScheme
from .selectors import forget_portal
from .signatures import STANDARD_PREFIX, SignatureError, _standard_key, new_standard_secret

KEY_PREFIX = "lmk_"
MAX_LIVE_KEYS = 2
RATE_PATTERN = re.compile(r"^\d+/\d*[smhd]$")
CONFIG_FIELDS = (
    "code",
    "name",
    "is_active",
    "default_lead_type",
    "rate_limit",
    "duplicate_window_days",
    "mapping",
    "key_location",
    "key_field",
    "json_form_field",
    "redact_fields",
    "signature_scheme",
    "signature_header",
    "signature_encoding",
    "signature_prefix",
)


class ReceptionNotReplayable(Conflict):
    default_message = "This reception cannot be replayed."


class PortalNotFound(NotFound):
    default_message = "Portal not found."


# --- keys --------------------------------------------------------------------------------


def hash_key(key: str) -> str:
    # Keys are 256-bit random tokens: a fast hash is enough, no salt or stretching needed.
    return hashlib.sha256(key.encode()).hexdigest()


def key_matches(presented: str, key_hashes: tuple[str, ...]) -> bool:
    """Constant-time check of a presented key against every live hash."""
    if not presented:
        return False
    digest = hash_key(presented).encode()
    matched = False
    for candidate in key_hashes:
        matched |= hmac.compare_digest(digest, candidate.encode())
    return matched


def _issue_key(*, portal: Portal, now: datetime) -> str:
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    PortalKey.objects.create(portal=portal, key_hash=hash_key(key), prefix=key[:12], created_at=now)
    return key


# --- configuration -----------------------------------------------------------------------


def validate_portal(portal: Portal) -> None:
    """Raises ValidationError with every problem of the portal's configuration."""
    errors: dict[str, list[str]] = {}
    problems = mapping_engine.validate_spec(portal.mapping, targets=LEAD_FIELDS)
    if problems:
        errors["mapping"] = problems
    if not RATE_PATTERN.match(portal.rate_limit or ""):
        errors["rate_limit"] = ["Use count/period, e.g. 600/m, 10/s or 5000/h."]
    if portal.key_location == KeyLocation.BODY_FIELD and not portal.key_field:
        errors["key_field"] = ["Name the body field that carries the key."]
    if portal.key_location == KeyLocation.NONE and portal.signature_scheme == SignatureScheme.NONE:
        errors["key_location"] = ["A portal without a key must require a signature."]
    if portal.signature_scheme == SignatureScheme.SINGLE_HEADER and not portal.signature_header:
        errors["signature_header"] = ["Name the header that carries the signature."]
    if portal.signature_scheme == SignatureScheme.STANDARD_WEBHOOKS and portal.signing_secret:
        try:
            if not portal.signing_secret.startswith(STANDARD_PREFIX):
                raise SignatureError
            _standard_key(portal.signing_secret)
        except SignatureError:
            errors["signing_secret"] = ["A Standard Webhooks secret is 'whsec_' followed by base64."]
    if not isinstance(portal.redact_fields, list) or not all(isinstance(name, str) for name in portal.redact_fields):
        errors["redact_fields"] = ["Enter a list of field names."]
    try:
        portal.full_clean(exclude=["mapping", "redact_fields", "rate_limit"], validate_unique=False)
    except ValidationError as exc:
        for name, messages in exc.message_dict.items():
            errors.setdefault(name, []).extend(messages)
    if errors:
        raise ValidationError(errors)


def _ensure_signing_secret(portal: Portal, supplied: str | None) -> str | None:
    """Sets the secret from `supplied`, or generates one if signing needs it. Returns a new one to show."""
    if supplied:
        portal.signing_secret = supplied
        return None
    if portal.signature_scheme != SignatureScheme.NONE and not portal.signing_secret:
        portal.signing_secret = new_standard_secret()
        return portal.signing_secret
    return None


@dataclass
class IssuedCredentials:
    portal: Portal
    api_key: str | None
    signing_secret: str | None


@transaction.atomic
def create_portal(*, actor, data: dict, now: datetime, ip: str | None = None) -> IssuedCredentials:
    """Creates a portal and its first API key; the key (and a generated signing secret) are
    returned here once and never again. Raises ValidationError."""
    data = dict(data)
    supplied_secret = data.pop("signing_secret", None)
    if Portal.objects.filter(code=data.get("code")).exists():
        raise ValidationError({"code": ["A portal with this code already exists."]})
    portal = Portal(**data, created_at=now, updated_at=now)
    secret = _ensure_signing_secret(portal, supplied_secret)
    validate_portal(portal)
    try:
        with transaction.atomic():
            portal.save()
    except IntegrityError as exc:
        raise ValidationError({"code": ["A portal with this code already exists."]}) from exc
    key = _issue_key(portal=portal, now=now)
    record_action(actor=actor, action="portal.created", target=portal, after=snapshot(portal, CONFIG_FIELDS), ip=ip)
    forget_portal(portal.code)
    return IssuedCredentials(portal=portal, api_key=key, signing_secret=secret)


@transaction.atomic
def update_portal(*, actor, portal_id: int, data: dict, now: datetime, ip: str | None = None) -> Portal:
    """Changes a portal's configuration (mapping, limits, active flag, ...). The code is fixed.
    Raises PortalNotFound or ValidationError."""
    portal = Portal.objects.select_for_update().filter(pk=portal_id).first()
    if portal is None:
        raise PortalNotFound()
    data = dict(data)
    supplied_secret = data.pop("signing_secret", None)
    data.pop("code", None)
    before = snapshot(portal, CONFIG_FIELDS)
    for name, value in data.items():
        setattr(portal, name, value)
    _ensure_signing_secret(portal, supplied_secret)
    validate_portal(portal)
    portal.updated_at = now
    portal.save()
    record_action(
        actor=actor,
        action="portal.updated",
        target=portal,
        before=before,
        after=snapshot(portal, CONFIG_FIELDS),
        metadata={"signing_secret_changed": bool(supplied_secret)},
        ip=ip,
    )
    forget_portal(portal.code)
    return portal


@transaction.atomic
def rotate_portal_key(
    *,
    actor,
    portal_id: int,
    now: datetime,
    revoke_previous: bool = False,
    rotate_signing_secret: bool = False,
    ip: str | None = None,
) -> IssuedCredentials:
    """Issues a new API key, shown once. The newest previous key stays live so the portal can
    switch without downtime (at most two live keys), unless `revoke_previous` revokes all of
    them at once (a leaked key). Raises PortalNotFound."""
    portal = Portal.objects.select_for_update().filter(pk=portal_id).first()
    if portal is None:
        raise PortalNotFound()
    live = list(PortalKey.objects.filter(portal=portal, revoked_at__isnull=True).order_by("-created_at", "-id"))
    keep = 0 if revoke_previous else MAX_LIVE_KEYS - 1
    revoked = [key.pk for key in live[keep:]]
    PortalKey.objects.filter(pk__in=revoked).update(revoked_at=now)
    key = _issue_key(portal=portal, now=now)
    secret = None
    if rotate_signing_secret and portal.signature_scheme != SignatureScheme.NONE:
        portal.signing_secret = new_standard_secret()
        secret = portal.signing_secret
    portal.updated_at = now
    portal.save(update_fields=["signing_secret", "updated_at"])
    record_action(
        actor=actor,
        action="portal.key_rotated",
        target=portal,
        metadata={"revoked_key_ids": revoked, "new_key_prefix": key[:12], "signing_secret_rotated": bool(secret)},
        ip=ip,
    )
    forget_portal(portal.code)
    return IssuedCredentials(portal=portal, api_key=key, signing_secret=secret)


# --- mapping -----------------------------------------------------------------------------


@dataclass
class MappedLead:
    values: dict | None
    errors: dict[str, list[str]] = field(default_factory=dict)


def map_payload(*, portal: Portal, payload: dict, spec: dict | None = None) -> MappedLead:
    """The standard lead that `payload` becomes under the portal's mapping (or `spec`)."""
    spec = portal.mapping if spec is None else spec
    result = mapping_engine.apply_mapping(spec, payload, targets=LEAD_FIELDS)
    if result.errors:
        return MappedLead(values=None, errors=result.errors)
    values = dict(result.values)
    extra = values.pop("details", None)
    details = {**result.details, **(extra if isinstance(extra, dict) else {})}
    if extra is not None and not isinstance(extra, dict):
        return MappedLead(values=None, errors={"details": ["Enter an object."]})
    try:
        lead = normalize_lead({**values, "details": details}, default_lead_type=portal.default_lead_type)
    except ValidationError as exc:
        return MappedLead(values=None, errors=exc.message_dict)
    return MappedLead(values=lead)


def preview_mapping(*, portal_id: int, payload: dict, spec: dict | None = None) -> MappedLead:
    """What `payload` would become, without creating anything. Raises PortalNotFound, or
    ValidationError listing the problems of an invalid `spec`."""
    portal = Portal.objects.filter(pk=portal_id).first()
    if portal is None:
        raise PortalNotFound()
    if spec is not None:
        problems = mapping_engine.validate_spec(spec, targets=LEAD_FIELDS)
        if problems:
            raise ValidationError({"mapping": problems})
    return map_payload(portal=portal, payload=payload, spec=spec)


# --- receptions and ingestion ------------------------------------------------------------


@dataclass
class ReceptionRecord:
    """Everything known about a reception before its outcome (see Reception)."""

    portal_code: str
    received_at: datetime
    client_ip: str | None = None
    portal: Portal | None = None
    payload: dict | None = None
    payload_text: str = ""
    payload_truncated: bool = False
    headers: dict = field(default_factory=dict)
    idempotency_key: str = ""
    replay_of: Reception | None = None


def _reception(
    *, record: ReceptionRecord, status_code: int, outcome: str, errors=None, lead: Lead | None = None, latency_ms=0
) -> Reception:
    return Reception(
        portal=record.portal,
        portal_code=record.portal_code[:64],
        received_at=record.received_at,
        client_ip=record.client_ip,
        status_code=status_code,
        outcome=outcome,
        errors=errors or {},
        latency_ms=latency_ms,
        lead=lead,
        payload=record.payload,
        payload_text=record.payload_text,
        payload_truncated=record.payload_truncated,
        headers=record.headers,
        idempotency_key=record.idempotency_key,
        replay_of=record.replay_of,
    )


def _counted(reception: Reception) -> Reception:
    # Unknown portal codes share one label: strangers must not grow the metric's cardinality.
    metrics.webhook_receptions.labels(reception.portal.code if reception.portal else "unknown", reception.outcome).inc()
    return reception


def record_reception(
    *, record: ReceptionRecord, status_code: int, outcome: str, errors=None, lead: Lead | None = None, latency_ms=0
) -> Reception:
    reception = _reception(
        record=record, status_code=status_code, outcome=outcome, errors=errors, lead=lead, latency_ms=latency_ms
    )
    return _counted(insert_one(reception))


@dataclass
class IngestResult:
    status_code: int
    outcome: str
    lead: Lead | None = None
    errors: dict = field(default_factory=dict)
    reception: Reception | None = None


def ingest_payload(
    *, portal: Portal, payload: dict, record: ReceptionRecord, now: datetime, latency_ms=lambda: 0
) -> IngestResult:
    """Maps, validates and stores one authenticated payload, auditing the reception.

    New lead: 201 `accepted` (or `duplicate_lead` when it repeats a recent lead). The
    portal re-sent a lead (same external_id or idempotency key, also concurrently): 201
    `duplicate_resent` with the original, nothing created. Invalid: 400 `invalid`.
    A new lead and its reception are stored together (see `create_lead`), so a 2xx means
    the lead is stored; the reception's latency then runs until the lead's statement is sent.
    """
    mapped = map_payload(portal=portal, payload=payload)
    if mapped.errors:
        reception = record_reception(
            record=record,
            status_code=400,
            outcome=ReceptionOutcome.INVALID,
            errors=mapped.errors,
            latency_ms=latency_ms(),
        )
        return IngestResult(400, ReceptionOutcome.INVALID, errors=mapped.errors, reception=reception)
    values = mapped.values
    reception = _reception(record=record, status_code=201, outcome=ReceptionOutcome.ACCEPTED, latency_ms=latency_ms())
    companion = LeadCompanion(reception, "lead", if_duplicate={"outcome": ReceptionOutcome.DUPLICATE_LEAD})
    try:
        lead = create_lead(
            portal=portal, values=values, idempotency_key=record.idempotency_key, now=now, companion=companion
        )
        return IngestResult(201, reception.outcome, lead=lead, reception=_counted(reception))
    except IntegrityError:
        original = find_resent_lead(
            portal_id=portal.pk, external_id=values.get("external_id", ""), idempotency_key=record.idempotency_key
        )
        if original is None:
            raise
    # The contract: a re-send gets the same 2xx and the same lead_id as the first delivery.
    reception = record_reception(
        record=record,
        status_code=201,
        outcome=ReceptionOutcome.DUPLICATE_RESENT,
        lead=original,
        latency_ms=latency_ms(),
    )
    return IngestResult(201, ReceptionOutcome.DUPLICATE_RESENT, lead=original, reception=reception)


@transaction.atomic
def replay_reception(*, actor, reception_id: int, now: datetime, ip: str | None = None) -> IngestResult:
    """Runs a failed reception's stored payload through the portal's current mapping,
    producing the lead it should have (a new reception records the attempt, linked to
    the original). Raises NotFound, or ReceptionNotReplayable when the payload was never
    read (auth, size, media type), truncated, or already produced a lead."""
    original = Reception.objects.select_related("portal").filter(pk=reception_id).first()
    if original is None:
        raise NotFound("Reception not found.")
    if not original.replayable:
        raise ReceptionNotReplayable(
            "Only invalid or failed receptions with a complete stored payload can be replayed."
        )
    record = ReceptionRecord(
        portal_code=original.portal_code,
        received_at=now,
        portal=original.portal,
        payload=original.payload,
        headers=original.headers,
        idempotency_key=original.idempotency_key,
        replay_of=original,
    )
    result = ingest_payload(portal=original.portal, payload=original.payload, record=record, now=now)
    record_action(
        actor=actor,
        action="reception.replayed",
        target=original,
        metadata={
            "replay_reception_id": result.reception.pk,
            "outcome": result.outcome,
            "lead_id": result.lead.pk if result.lead else None,
        },
        ip=ip,
    )
    return result
