from django.db import models
from django.db.models import Q
from django.utils import timezone


class KeyLocation(models.TextChoices):
    HEADER = "header", "X-API-Key header"
    BODY_FIELD = "body_field", "A field of the body"
    NONE = "none", "No key (signature only)"


class SignatureScheme(models.TextChoices):
    NONE = "none", "No signature"
    STANDARD_WEBHOOKS = "standard_webhooks", "Standard Webhooks (webhook-id/-timestamp/-signature)"
    SINGLE_HEADER = "single_header", "HMAC-SHA256 of the body in one header"


class DigestEncoding(models.TextChoices):
    HEX = "hex", "hex"
    BASE64 = "base64", "base64"


class Portal(models.Model):
    """A lead source posting to /api/webhooks/<code>; onboarding one is configuration, not code."""

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    default_lead_type = models.CharField(max_length=50, blank=True)
    rate_limit = models.CharField(max_length=20, default="600/m", help_text="Requests per window, e.g. 600/m")
    duplicate_window_days = models.PositiveIntegerField(default=30, help_text="0 disables duplicate detection")
    mapping = models.JSONField(default=dict, blank=True, help_text="Declarative payload mapping; {} = flat lead")

    key_location = models.CharField(max_length=16, choices=KeyLocation.choices, default=KeyLocation.HEADER)
    key_field = models.CharField(max_length=100, blank=True, help_text="Body field carrying the key")
    json_form_field = models.CharField(
        max_length=100, blank=True, help_text="Form field holding a JSON document (form bodies only)"
    )
    redact_fields = models.JSONField(default=list, blank=True, help_text="Top-level body fields never stored")

    signature_scheme = models.CharField(max_length=20, choices=SignatureScheme.choices, default=SignatureScheme.NONE)
    signature_header = models.CharField(max_length=100, blank=True)
    signature_encoding = models.CharField(max_length=8, choices=DigestEncoding.choices, default=DigestEncoding.HEX)
    signature_prefix = models.CharField(max_length=32, blank=True, help_text="e.g. sha256=")
    # SECRET. Kept as-is because verifying an HMAC needs the key itself; shown once when
    # generated, never serialized, read-only in the admin. Protect the database accordingly.
    signing_secret = models.CharField(max_length=200, blank=True, editable=False)

    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        permissions = [
            ("rotate_portal_key", "Can rotate a portal's API key"),
            ("preview_portal_mapping", "Can preview a portal mapping"),
        ]

    def __str__(self) -> str:
        return self.code


class PortalKey(models.Model):
    """An API key of a portal, stored as its SHA-256 only (keys are 256-bit random tokens)."""

    portal = models.ForeignKey(Portal, on_delete=models.CASCADE, related_name="keys")
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=16, help_text="First characters, to recognise the key")
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["portal"], condition=Q(revoked_at__isnull=True), name="portalkey_live_idx")]

    def __str__(self) -> str:
        return f"{self.prefix}… ({'revoked' if self.revoked_at else 'live'})"


class ReceptionOutcome(models.TextChoices):
    ACCEPTED = "accepted", "Accepted (new lead)"
    DUPLICATE_RESENT = "duplicate_resent", "Re-sent lead (original returned)"
    DUPLICATE_LEAD = "duplicate_lead", "Stored as a duplicate"
    INVALID = "invalid", "Invalid payload"
    UNAUTHORIZED = "unauthorized", "Bad or missing credentials"
    NOT_FOUND = "not_found", "Unknown or inactive portal"
    TOO_LARGE = "too_large", "Body too large"
    UNSUPPORTED = "unsupported", "Unsupported media type"
    THROTTLED = "throttled", "Throttled"
    ERROR = "error", "Server error"


class Reception(models.Model):
    """The audit row of one webhook reception, whatever its outcome."""

    # No index of its own: reception_portal_recent_idx starts with the portal (one insert less per reception).
    portal = models.ForeignKey(
        Portal, null=True, blank=True, on_delete=models.PROTECT, related_name="receptions", db_index=False
    )
    portal_code = models.CharField(max_length=64, help_text="The code in the URL, kept for unknown portals")
    received_at = models.DateTimeField()
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField()
    outcome = models.CharField(max_length=20, choices=ReceptionOutcome.choices)
    errors = models.JSONField(default=dict, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    lead = models.ForeignKey("leads.Lead", null=True, blank=True, on_delete=models.PROTECT, related_name="receptions")
    payload = models.JSONField(null=True, blank=True, help_text="Parsed body, secrets removed")
    payload_text = models.TextField(blank=True, help_text="Raw body when it could not be parsed (capped)")
    payload_truncated = models.BooleanField(default=False)
    headers = models.JSONField(default=dict, blank=True)
    idempotency_key = models.CharField(max_length=255, blank=True)
    # Indexed only where set (reception_replay_of_idx): almost no reception is a replay.
    replay_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="replays", db_index=False
    )

    class Meta:
        permissions = [("replay_reception", "Can replay a webhook reception")]
        indexes = [
            models.Index(fields=["portal", "-received_at", "-id"], name="reception_portal_recent_idx"),
            models.Index(fields=["outcome", "-received_at"], name="reception_outcome_idx"),
            models.Index(fields=["replay_of"], condition=Q(replay_of__isnull=False), name="reception_replay_of_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.portal_code} {self.outcome} {self.status_code} at {self.received_at:%Y-%m-%d %H:%M:%S}"

    @property
    def replayable(self) -> bool:
        return (
            self.portal_id is not None
            and self.payload is not None
            and not self.payload_truncated
            and self.outcome in {ReceptionOutcome.INVALID, ReceptionOutcome.ERROR}
        )
