from django.db import models
from django.db.models import Q


class LeadStatus(models.TextChoices):
    NEW = "new", "New (stored, waiting for distribution)"
    DUPLICATE = "duplicate", "Duplicate of an earlier lead"
    TEST = "test", "Test lead (never distributed)"
    UNASSIGNED = "unassigned", "Unassigned (no eligible agency)"
    OFFERED = "offered", "Offered to an agency"
    ACCEPTED = "accepted", "Accepted by an agency"


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
    # Indexed only where set (lead_duplicate_of_idx): a full index would hold a NULL for every lead and
    # take an insert on every status change, which is not a HOT update.
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="duplicates", db_index=False
    )

    class Meta:
        permissions = [("distribute_lead", "Can distribute leads by hand")]
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
            # The staff list, newest first, also by ZIP code, and by ZIP code and status: keyset
            # pages, and the capped count, read one index range. (With the status only included
            # in the ZIP code's index, a page of one status walked past the ZIP code's newer
            # leads of other statuses, and the count read all of the ZIP code's entries.)
            models.Index(fields=["-received_at", "-id"], name="lead_recent_idx"),
            models.Index(fields=["zipcode", "-received_at", "-id"], name="lead_zipcode_recent_idx"),
            models.Index(fields=["zipcode", "status", "-received_at", "-id"], name="lead_zipcode_status_list_idx"),
            # Redistribution walks the unassigned backlog in id order, batches across ZIP codes.
            models.Index(fields=["id"], condition=Q(status="unassigned"), name="lead_unassigned_idx"),
            # The duplicates of a lead (and the PROTECT check when one is deleted).
            models.Index(
                fields=["duplicate_of"], condition=Q(duplicate_of__isnull=False), name="lead_duplicate_of_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"Lead {self.pk} ({self.zipcode}, {self.status})"


class OfferStatus(models.TextChoices):
    OFFERED = "offered", "Offered, waiting for the agency"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired without an answer"
    WITHDRAWN = "withdrawn", "Withdrawn (agency suspended or staff reassigned)"


class RejectReason(models.TextChoices):
    NOT_INTERESTED = "not_interested", "Not interested"
    OUTSIDE_SERVICE_AREA = "outside_service_area", "Outside our service area"
    BAD_CONTACT_INFO = "bad_contact_info", "Contact details look wrong"
    DUPLICATE = "duplicate", "We already have this lead"
    NO_CAPACITY = "no_capacity", "No capacity right now"
    OTHER = "other", "Other"


class SkipReason(models.TextChoices):
    """Why an agency of the lead's territory did not get an offer (the decision trace)."""

    SUSPENDED = "suspended", "Agency suspended"
    NOT_ACTIVE = "not_active", "Agency not active yet"
    PAUSED = "paused", "Agency paused new leads"
    CAP_REACHED = "cap_reached", "Monthly lead cap reached"
    ALREADY_OFFERED = "already_offered", "Already offered this lead (rejected or let it expire)"


class OfferQuerySet(models.QuerySet):
    def live(self):
        return self.filter(status=OfferStatus.OFFERED)

    def visible_to(self, agency, *, now):
        """The one scoping chokepoint of agency-facing lead reads: an agency sees a lead while
        it is offered to it (and the offer has not run out) and after it accepted it."""
        return self.filter(agency=agency).filter(
            Q(status=OfferStatus.ACCEPTED) | Q(status=OfferStatus.OFFERED, expires_at__gt=now)
        )

    def counting_towards_cap(self):
        """Offers an agency keeps on its cap: waiting or accepted (not rejected, expired, withdrawn)."""
        return self.filter(status__in=(OfferStatus.OFFERED, OfferStatus.ACCEPTED))


class Offer(models.Model):
    """A lead offered to one agency; at most one offer per lead is live at a time.

    The foreign keys have no index of their own: each is the first column of an index below
    (lead: one_offer_per_lead_and_agency, agency: offer_agency_list_idx, subscription:
    offer_subscription_period_idx; assigned_by, rarely set: offer_assigned_by_idx), and every
    index costs an insert per offer made.
    """

    lead = models.ForeignKey(Lead, on_delete=models.PROTECT, related_name="offers", db_index=False)
    agency = models.ForeignKey("agencies.Agency", on_delete=models.PROTECT, related_name="offers", db_index=False)
    subscription = models.ForeignKey(
        "subscriptions.Subscription",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="offers",
        db_index=False,
        help_text="The subscription whose period cap this offer counts towards.",
    )
    status = models.CharField(max_length=16, choices=OfferStatus.choices, default=OfferStatus.OFFERED)
    offered_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    responded_at = models.DateTimeField(null=True, blank=True, help_text="Accepted, rejected, expired or withdrawn.")
    reject_reason = models.CharField(max_length=32, choices=RejectReason.choices, blank=True)
    reject_note = models.CharField(max_length=500, blank=True)
    decision = models.JSONField(default=dict, help_text="Why this agency: eligible set, rotation, skipped agencies.")
    assigned_by = models.ForeignKey(
        "agencies.User",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        help_text="Staff user who distributed the lead by hand.",
    )
    reminded_at = models.DateTimeField(null=True, blank=True)

    objects = OfferQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["lead"], condition=Q(status=OfferStatus.OFFERED), name="one_live_offer_per_lead"
            ),
            models.UniqueConstraint(fields=["lead", "agency"], name="one_offer_per_lead_and_agency"),
            models.CheckConstraint(
                condition=Q(expires_at__gt=models.F("offered_at")), name="offer_expires_after_offer"
            ),
            models.CheckConstraint(
                condition=Q(reject_reason="") | Q(status=OfferStatus.REJECTED), name="offer_reason_only_when_rejected"
            ),
        ]
        indexes = [
            # The agency's lead list, newest first. Visibility (status, expiry) is in the index,
            # so the list's capped count is an index-only scan, not a scan of the table.
            models.Index(
                fields=["agency", "-offered_at", "-id"], include=["status", "expires_at"], name="offer_agency_list_idx"
            ),
            # Cap accounting: offers of a subscription in its current period.
            models.Index(fields=["subscription", "offered_at"], name="offer_subscription_period_idx"),
            # The expiry sweep and the reminders only look at live offers.
            models.Index(fields=["expires_at"], condition=Q(status="offered"), name="offer_live_expiry_idx"),
            # The PROTECT check when a staff user is deleted; rotation offers have no assigner.
            models.Index(fields=["assigned_by"], condition=Q(assigned_by__isnull=False), name="offer_assigned_by_idx"),
        ]

    def __str__(self) -> str:
        return f"Offer of lead {self.lead_id} to agency {self.agency_id} ({self.status})"


class RotationCursor(models.Model):
    """Where the rotation of one ZIP code stands: the agency that got its last offer.

    Its row lock serialises distribution within a ZIP code (never across ZIP codes), so
    concurrent leads cannot unbalance the rotation. `last_agency_id` is a plain number, not a
    foreign key, so that locking the cursor never locks an agency row.
    """

    zipcode = models.CharField(max_length=5, primary_key=True)
    last_agency_id = models.BigIntegerField(null=True, blank=True)
    offers_made = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Rotation of {self.zipcode} after agency {self.last_agency_id}"
