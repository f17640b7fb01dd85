from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.utils import timezone


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **fields):
        user = self.model(email=normalize_email(email), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields):
        fields.update(is_staff=True, is_superuser=True)
        return self.create_user(email, password, **fields)


def normalize_email(email: str) -> str:
    """Emails are compared case-insensitively, so they are stored lower-cased."""
    return (email or "").strip().lower()


class User(AbstractBaseUser, PermissionsMixin):
    """Everyone who logs in: agency owners and staff. The email is the login."""

    email = models.EmailField(unique=True, max_length=254)
    full_name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"

    def __str__(self) -> str:
        return self.email


class AgencyStatus(models.TextChoices):
    PENDING = "pending", "Pending approval"
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"


class AgencyQuerySet(models.QuerySet):
    def active(self):
        return self.filter(status=AgencyStatus.ACTIVE)


class Agency(models.Model):
    """A business that buys leads; owned by one user who logs in to the mobile app."""

    user = models.OneToOneField(User, on_delete=models.PROTECT, related_name="agency")
    business_name = models.CharField(max_length=200)
    contact_name = models.CharField(max_length=150, blank=True)
    phone = models.CharField(max_length=20, blank=True, help_text="E.164")
    status = models.CharField(max_length=16, choices=AgencyStatus.choices, default=AgencyStatus.ACTIVE)
    accepting_leads = models.BooleanField(default=True, help_text="The agency can pause new offers itself.")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AgencyQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "agencies"
        indexes = [models.Index(fields=["status"])]

    def __str__(self) -> str:
        return self.business_name

    @property
    def email(self) -> str:
        return self.user.email


class DevicePlatform(models.TextChoices):
    ANDROID = "android", "Android"
    IOS = "ios", "iOS"
    WEB = "web", "Web"


class Device(models.Model):
    """An FCM registration token of the agency's mobile app."""

    agency = models.ForeignKey(Agency, on_delete=models.CASCADE, related_name="devices")
    token = models.CharField(max_length=4096, unique=True)
    platform = models.CharField(max_length=16, choices=DevicePlatform.choices)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_registered_at = models.DateTimeField(default=timezone.now)
    deactivated_at = models.DateTimeField(null=True, blank=True)
    deactivation_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        indexes = [models.Index(fields=["agency"], condition=models.Q(is_active=True), name="device_active_by_agency")]

    def __str__(self) -> str:
        return f"{self.platform} device of {self.agency_id}"


class NotificationKind(models.TextChoices):
    LEAD_OFFERED = "lead_offered", "Lead offered"
    OFFER_EXPIRING = "offer_expiring", "Offer about to expire"
    OFFER_EXPIRED = "offer_expired", "Offer expired"
    LEAD_REASSIGNED = "lead_reassigned", "Lead reassigned by staff"
    SUBSCRIPTION_RENEWED = "subscription_renewed", "Subscription renewed"
    SUBSCRIPTION_CANCELLED = "subscription_cancelled", "Subscription cancelled"
    PAYMENT_DUE = "payment_due", "Payment due"


class PushStatus(models.TextChoices):
    PENDING = "pending", "Waiting to be pushed"
    SENDING = "sending", "Being pushed"
    SENT = "sent", "Pushed"
    NO_DEVICES = "no_devices", "No active device"
    FAILED = "failed", "Failed"


class NotificationQuerySet(models.QuerySet):
    def for_agency(self, agency: Agency):
        """The one scoping chokepoint of agency-facing notification reads."""
        return self.filter(agency=agency)

    def unread(self):
        return self.filter(read_at__isnull=True)


class Notification(models.Model):
    """One event for one agency: the in-app inbox entry and the push sent for it."""

    # No index of its own: notification_inbox_idx starts with the agency (one insert less per notification).
    agency = models.ForeignKey(Agency, on_delete=models.CASCADE, related_name="notifications", db_index=False)
    kind = models.CharField(max_length=32, choices=NotificationKind.choices)
    title = models.CharField(max_length=200)
    body = models.CharField(max_length=1000)
    data = models.JSONField(default=dict, blank=True, help_text="What the app routes on: lead_id, subscription_id.")
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)
    push_status = models.CharField(max_length=16, choices=PushStatus.choices, default=PushStatus.PENDING)
    push_attempts = models.PositiveSmallIntegerField(default=0)
    pushed_at = models.DateTimeField(
        null=True, blank=True, help_text="When pushing ended: sent, no active device, or failed for good."
    )
    push_error = models.CharField(max_length=500, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True, help_text="When the current push attempt started.")
    next_attempt_at = models.DateTimeField(null=True, blank=True, help_text="When a failed push is retried.")
    dedupe_key = models.CharField(max_length=100, blank=True, help_text="One notification per event, e.g. a reminder.")

    objects = NotificationQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["agency", "dedupe_key"], condition=~models.Q(dedupe_key=""), name="notification_once_per_event"
            )
        ]
        indexes = [
            models.Index(fields=["agency", "-created_at", "-id"], name="notification_inbox_idx"),
            models.Index(fields=["agency"], condition=models.Q(read_at__isnull=True), name="notification_unread_idx"),
            # The pushes still owed, oldest first: what push runs claim and the sweeper checks.
            # Keyed on `pushed_at`, not on the status that every attempt changes: claiming a
            # push then changes no indexed column (a HOT update where the page has room), and
            # writing an outcome by id is never planned through this index, whose dead
            # entries pile up between vacuums.
            models.Index(
                fields=["created_at"], condition=models.Q(pushed_at__isnull=True), name="notification_unsettled_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} for {self.agency_id}"
