from django.db import models
from django.db.models import Q


class LeadStatus(models.TextChoices):
    NEW = "new", "New (stored, waiting for distribution)"
    DUPLICATE = "duplicate", "Duplicate of an earlier lead"
    TEST = "test", "Test lead (never distributed)"
    UNASSIGNED = "unassigned", "Unassigned (no eligible agency)"
    OFFERED = "offered", "Offered to an agency"
    ACCEPTED = "accepted", "Accepted by an agency"


class LeadQuerySet(models.QuerySet):
    def pending_handoff(self, *, received_before):
        """Leads stored but still waiting to be handed to distribution."""
        return self.filter(status=LeadStatus.NEW, received_at__lt=received_before)


class Lead(models.Model):
    """The standard lead: what every portal's payload is mapped onto."""

    portal = models.ForeignKey("portals.Portal", on_delete=models.PROTECT, related_name="leads")
    status = models.CharField(max_length=16, choices=LeadStatus.choices, default=LeadStatus.NEW)
    received_at = models.DateTimeField()
    status_changed_at = models.DateTimeField(null=True, blank=True)

    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    email = models.EmailField(max_length=254, blank=True)
    phone = models.CharField(max_length=20, blank=True, help_text="E.164")
    zipcode = models.CharField(max_length=5)
    address = models.CharField(max_length=255, blank=True)
    city = models.CharField(max_length=100, blank=True)
    state = models.CharField(max_length=2, blank=True)
    lead_type = models.CharField(max_length=50, blank=True)
    details = models.JSONField(default=dict, blank=True)

    tcpa_consent = models.BooleanField(default=False)
    consent_text = models.TextField(blank=True)
    consented_at = models.DateTimeField(null=True, blank=True)
    consent_ip = models.GenericIPAddressField(null=True, blank=True)
    certificate_url = models.URLField(max_length=500, blank=True)

    external_id = models.CharField(max_length=255, blank=True)
    idempotency_key = models.CharField(max_length=255, blank=True)
    is_test = models.BooleanField(default=False)
    duplicate_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="duplicates")

    objects = LeadQuerySet.as_manager()

    class Meta:
        constraints = [
            # A re-sent lead never makes a second row: the database decides, also under races.
            models.UniqueConstraint(
                fields=["portal", "external_id"], condition=~Q(external_id=""), name="lead_unique_portal_external_id"
            ),
            models.UniqueConstraint(
                fields=["portal", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="lead_unique_portal_idempotency_key",
            ),
            models.CheckConstraint(condition=~Q(phone="", email=""), name="lead_has_phone_or_email"),
            models.CheckConstraint(
                condition=Q(duplicate_of__isnull=True) | Q(status=LeadStatus.DUPLICATE),
                name="lead_duplicate_of_only_on_duplicates",
            ),
        ]
        indexes = [
            # Duplicate detection: same ZIP and phone (or email) within the window.
            models.Index(fields=["zipcode", "phone", "received_at"], name="lead_dedupe_phone_idx"),
            models.Index(fields=["zipcode", "email", "received_at"], name="lead_dedupe_email_idx"),
            # The sweeper's work queue stays tiny: only leads waiting for hand-off.
            models.Index(fields=["received_at", "id"], condition=Q(status="new"), name="lead_pending_handoff_idx"),
            models.Index(fields=["status", "received_at"], name="lead_status_received_idx"),
        ]

    def __str__(self) -> str:
        return f"Lead {self.pk} ({self.zipcode}, {self.status})"
