"""Plans, subscriptions, the ZIP-code territories they hold, and the billing ledger.

Ledger sign convention: every entry stores a non-negative `amount`; its kind gives the
sign. Charges and refunds add to what the agency owes, credits and payments subtract:

    balance = sum(charges) + sum(refunds) - sum(credits) - sum(payments)

A positive balance is money the agency owes, a negative one money it has in hand.
"""

from decimal import Decimal

from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Case, F, Q, Sum, Value, When, Window
from django.db.models.functions import Coalesce
from django.utils import timezone

from agencies.models import Agency

from .billing import CENT, ZERO, monthly_price

ZIPCODE_VALIDATOR = RegexValidator(r"^\d{5}$", "Enter a five-digit US ZIP code.")
MONEY = {"max_digits": 12, "decimal_places": 2}
NON_NEGATIVE = [MinValueValidator(Decimal("0.00"))]


class PlanQuerySet(models.QuerySet):
    def active(self):
        return self.filter(is_active=True)

    def in_display_order(self):
        return self.order_by("display_order", "name", "id")


class Plan(models.Model):
    """What an agency can buy: a price per ZIP code per month, a ZIP limit and a lead cap."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    price_per_zipcode = models.DecimalField(**MONEY, validators=NON_NEGATIVE, help_text="USD per ZIP code per month.")
    base_price = models.DecimalField(
        **MONEY, default=ZERO, validators=NON_NEGATIVE, help_text="USD per month on top of the ZIP codes."
    )
    max_zipcodes = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    monthly_lead_cap = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Leads an agency on this plan may receive per billing period; empty = unlimited.",
    )
    is_active = models.BooleanField(default=True, help_text="Inactive plans leave the catalogue; subscribers stay.")
    display_order = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PlanQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(price_per_zipcode__gte=0), name="plan_price_per_zipcode_not_negative"),
            models.CheckConstraint(condition=Q(base_price__gte=0), name="plan_base_price_not_negative"),
            models.CheckConstraint(condition=Q(max_zipcodes__gte=1), name="plan_max_zipcodes_at_least_one"),
            models.CheckConstraint(
                condition=Q(monthly_lead_cap__isnull=True) | Q(monthly_lead_cap__gte=1),
                name="plan_monthly_lead_cap_positive_or_unlimited",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def monthly_price_for(self, zipcode_count: int) -> Decimal:
        return monthly_price(
            base_price=self.base_price, price_per_zipcode=self.price_per_zipcode, zipcode_count=zipcode_count
        )


# What staff set on a plan (the admin API and the Django admin).
PLAN_FIELDS = (
    "name",
    "description",
    "price_per_zipcode",
    "base_price",
    "max_zipcodes",
    "monthly_lead_cap",
    "is_active",
    "display_order",
)


class SubscriptionStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"


# A live subscription holds its territories and is billed; `past_due` is reserved for
# payment collection, which keeps the subscription live while a payment is awaited.
LIVE_STATUSES = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE)


class SubscriptionQuerySet(models.QuerySet):
    def for_agency(self, agency: Agency):
        """The one scoping chokepoint of agency-facing subscription reads."""
        return self.filter(agency=agency)

    def live(self):
        return self.filter(status__in=LIVE_STATUSES)

    def in_current_period(self, now):
        return self.filter(current_period_start__lte=now, current_period_end__gt=now)

    def due(self, now):
        """Live subscriptions whose period has ended: to renew, or to expire if cancelled at period end."""
        return self.live().filter(current_period_end__lte=now)

    def covering(self, zipcode: str, *, now):
        """Live subscriptions, within their current period at `now`, that hold `zipcode`."""
        return self.live().in_current_period(now).filter(territories__zipcode=zipcode)


class Subscription(models.Model):
    """An agency's subscription to a plan, billed monthly from `started_at`.

    `base_price` and `price_per_zipcode` are the plan's prices fixed for the current
    period: a plan price change applies from the next renewal, so credits never
    refund more than the period was charged at.
    """

    agency = models.ForeignKey(Agency, on_delete=models.PROTECT, related_name="subscriptions")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    status = models.CharField(max_length=16, choices=SubscriptionStatus.choices, default=SubscriptionStatus.ACTIVE)
    base_price = models.DecimalField(**MONEY, validators=NON_NEGATIVE)
    price_per_zipcode = models.DecimalField(**MONEY, validators=NON_NEGATIVE)
    started_at = models.DateTimeField(help_text="Anchor of the monthly billing periods.")
    current_period_start = models.DateTimeField()
    current_period_end = models.DateTimeField()
    cancel_at_period_end = models.BooleanField(default=False)
    cancelled_at = models.DateTimeField(null=True, blank=True, help_text="When the agency asked to cancel.")
    ended_at = models.DateTimeField(null=True, blank=True, help_text="When it stopped being live.")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = SubscriptionQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["agency"], condition=Q(status__in=LIVE_STATUSES), name="one_live_subscription_per_agency"
            ),
            models.CheckConstraint(
                condition=Q(current_period_end__gt=F("current_period_start")), name="subscription_period_not_empty"
            ),
            models.CheckConstraint(
                condition=Q(base_price__gte=0) & Q(price_per_zipcode__gte=0), name="subscription_prices_not_negative"
            ),
        ]
        indexes = [
            # The renewal sweep: live subscriptions by period end.
            models.Index(
                fields=["current_period_end"], condition=Q(status__in=LIVE_STATUSES), name="subscription_live_by_end"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.agency} on {self.plan} ({self.status})"

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES

    def monthly_price_for(self, zipcode_count: int) -> Decimal:
        return monthly_price(
            base_price=self.base_price, price_per_zipcode=self.price_per_zipcode, zipcode_count=zipcode_count
        )

    def fix_prices_from(self, plan: Plan) -> None:
        """Takes `plan` and its current prices for the period that starts now."""
        self.plan = plan
        self.base_price = plan.base_price
        self.price_per_zipcode = plan.price_per_zipcode


class TerritoryQuerySet(models.QuerySet):
    def for_agency(self, agency: Agency):
        """The one scoping chokepoint of agency-facing territory reads."""
        return self.filter(subscription__agency=agency)

    def live(self):
        return self.filter(subscription__status__in=LIVE_STATUSES)

    def covering(self, zipcodes: list[str], *, now):
        """Territories for any of `zipcodes` of live subscriptions within their current period at `now`."""
        return self.live().filter(
            zipcode__in=zipcodes, subscription__current_period_start__lte=now, subscription__current_period_end__gt=now
        )


class Territory(models.Model):
    """A US ZIP code held by a subscription; city and state come from the offline ZIP dataset."""

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="territories")
    zipcode = models.CharField(max_length=5, validators=[ZIPCODE_VALIDATOR])
    city = models.CharField(max_length=100)
    state = models.CharField(max_length=2)
    created_at = models.DateTimeField(default=timezone.now)

    objects = TerritoryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "territories"
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "zipcode"], name="one_territory_per_zipcode_per_subscription"
            ),
            models.CheckConstraint(condition=Q(zipcode__regex=r"^[0-9]{5}$"), name="territory_zipcode_five_digits"),
        ]
        indexes = [models.Index(fields=["zipcode"])]

    def __str__(self) -> str:
        return f"{self.zipcode} {self.city}, {self.state}"


class EntryKind(models.TextChoices):
    CHARGE = "charge", "Charge"
    CREDIT = "credit", "Credit"
    PAYMENT = "payment", "Payment"
    REFUND = "refund", "Refund"


# Kinds that reduce what the agency owes; the others increase it.
SUBTRACTING_KINDS = (EntryKind.CREDIT, EntryKind.PAYMENT)


class EntryReason(models.TextChoices):
    SUBSCRIPTION_STARTED = "subscription_started", "Subscription started"
    RENEWAL = "renewal", "Renewal"
    PLAN_CHANGED = "plan_changed", "Plan changed"
    TERRITORY_ADDED = "territory_added", "ZIP code added"
    TERRITORY_REMOVED = "territory_removed", "ZIP code removed"
    CANCELLED = "cancelled", "Cancelled"


# The charge for a whole period; written once per subscription and period start.
PERIOD_CHARGE_REASONS = (EntryReason.SUBSCRIPTION_STARTED, EntryReason.RENEWAL)


class ImmutableEntry(Exception):
    pass


class LedgerEntryQuerySet(models.QuerySet):
    def for_agency(self, agency: Agency):
        """The one scoping chokepoint of agency-facing ledger reads."""
        return self.filter(agency=agency)

    def with_signed_amount(self):
        return self.annotate(
            signed_amount=Case(
                When(kind__in=SUBTRACTING_KINDS, then=-F("amount")),
                default=F("amount"),
                output_field=models.DecimalField(**MONEY),
            )
        )

    def with_running_balance(self):
        """Each entry with `balance`: the agency's balance right after it (entries in (created_at, id) order)."""
        return self.with_signed_amount().annotate(
            balance=Window(
                Sum("signed_amount"),
                partition_by=[F("agency_id")],
                order_by=[F("created_at").asc(), F("id").asc()],
                output_field=models.DecimalField(max_digits=14, decimal_places=2),
            )
        )

    def balance(self) -> Decimal:
        """The sum of the entries with their signs (see the module docstring)."""
        total = self.with_signed_amount().aggregate(
            total=Coalesce(
                Sum("signed_amount"), Value(ZERO), output_field=models.DecimalField(max_digits=14, decimal_places=2)
            )
        )["total"]
        return total.quantize(CENT)

    def update(self, **kwargs):
        raise ImmutableEntry("Ledger entries are immutable; write a correcting entry instead.")

    def delete(self):
        raise ImmutableEntry("Ledger entries are immutable; write a correcting entry instead.")


class LedgerEntry(models.Model):
    """One immutable line of an agency's account: a charge, credit, payment or refund.

    `amount` is never negative; the kind gives the sign (module docstring). The
    period charge of a subscription (first period or renewal) exists at most once per
    period start, enforced by the database.
    """

    agency = models.ForeignKey(Agency, on_delete=models.PROTECT, related_name="ledger_entries")
    subscription = models.ForeignKey(
        Subscription, null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_entries"
    )
    kind = models.CharField(max_length=16, choices=EntryKind.choices)
    reason = models.CharField(max_length=32, choices=EntryReason.choices, help_text="What caused the entry.")
    reference = models.CharField(
        max_length=100, blank=True, help_text="The ZIP code or plan change that caused it, when there is one."
    )
    amount = models.DecimalField(**MONEY, validators=NON_NEGATIVE)
    description = models.CharField(max_length=255)
    period_start = models.DateTimeField(null=True, blank=True, help_text="Start of the time the entry covers.")
    period_end = models.DateTimeField(null=True, blank=True, help_text="End of the time the entry covers.")
    created_at = models.DateTimeField(default=timezone.now)

    objects = LedgerEntryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "ledger entries"
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="ledger_amount_not_negative"),
            models.UniqueConstraint(
                fields=["subscription", "period_start"],
                condition=Q(kind=EntryKind.CHARGE, reason__in=PERIOD_CHARGE_REASONS),
                name="one_period_charge_per_subscription",
            ),
        ]
        indexes = [models.Index(fields=["agency", "created_at", "id"], name="ledger_agency_history")]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} {self.description}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ImmutableEntry("Ledger entries are immutable; write a correcting entry instead.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableEntry("Ledger entries are immutable; write a correcting entry instead.")
