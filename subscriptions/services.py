"""Subscriptions, territories, billing and plans: the write use cases.

Concurrency: every operation on an agency's subscription runs in one transaction that
holds the lock of its live subscription row (subscribe: of the agency row), so two
requests of one agency are applied one after the other and the second sees what the
first did; a limit cannot be passed twice. A subscription whose period has ended is
first brought up to date the way the renewal sweep does it (renewed, or expired when it
was cancelled at period end), so no result depends on when the sweep last ran.

Money: Decimal only, rounded half up to the cent; proration and periods are defined in
`billing.py`, the ledger's sign convention in `models.py`. Prorated entries that round
to 0.00 are not written. Time is injected: callers pass `now`.
"""

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from agencies.models import Agency, NotificationKind, User
from agencies.notifications import notify
from audit.services import record_action, snapshot
from leadmarket.errors import Conflict, NotFound
from leadmarket.zipcodes import ZIP_PATTERN, InvalidZip, ZipInfo, lookup_zip
from leads.distribution import retry_unassigned_in

from .billing import period_containing, prorate
from .models import (
    PERIOD_CHARGE_REASONS,
    PLAN_FIELDS,
    EntryKind,
    EntryReason,
    LedgerEntry,
    Plan,
    Subscription,
    SubscriptionStatus,
    Territory,
)
from .selectors import invalidate_plan_catalogue

logger = logging.getLogger(__name__)

SUBSCRIPTION_AUDIT_FIELDS = (
    "plan",
    "status",
    "base_price",
    "price_per_zipcode",
    "current_period_start",
    "current_period_end",
    "cancel_at_period_end",
    "cancelled_at",
    "ended_at",
)
TERRITORY_AUDIT_FIELDS = ("subscription", "zipcode", "city", "state")


class NoLiveSubscription(Conflict):
    default_message = "You have no active subscription."


# --- Subscriptions and territories --------------------------------------------------------


@transaction.atomic
def subscribe(
    *,
    agency: Agency,
    plan_id: int,
    zipcodes: list[str],
    now: datetime,
    actor: User | None = None,
    ip: str | None = None,
) -> Subscription:
    """Subscribes the agency to an active plan with 1..max_zipcodes ZIP codes.

    A billing period starts now and is charged in full. Raises Conflict when the agency
    already has a live subscription, ValidationError on `plan_id` (unknown or inactive
    plan) or `zipcodes` (none, repeated, more than the plan allows, not real US ZIP codes).
    """
    # One subscribe per agency at a time. NO KEY UPDATE: rows that refer to the agency
    # (ledger entries written by a concurrent renewal) can still be committed meanwhile.
    Agency.objects.select_for_update(no_key=True).get(pk=agency.pk)
    if _lock_live_subscription(agency, now=now) is not None:
        raise Conflict("You already have an active subscription: change its plan or cancel it first.")
    plan = _available_plan(plan_id)
    zips = _zip_infos(zipcodes, plan=plan)
    start, end = period_containing(anchor=now, moment=now)
    subscription = Subscription(
        agency=agency, started_at=now, current_period_start=start, current_period_end=end, created_at=now
    )
    subscription.fix_prices_from(plan)
    try:
        with transaction.atomic():
            subscription.save()
    except IntegrityError as exc:  # the live-subscription constraint: a concurrent subscribe won
        raise Conflict("You already have an active subscription.") from exc
    Territory.objects.bulk_create(
        Territory(subscription=subscription, zipcode=z.zipcode, city=z.city, state=z.state, created_at=now)
        for z in zips
    )
    amount = subscription.monthly_price_for(len(zips))
    _post(
        subscription,
        EntryKind.CHARGE,
        EntryReason.SUBSCRIPTION_STARTED,
        amount,
        f"{plan.name} plan, {_count(len(zips))}: {_span(start, end)}",
        period_start=start,
        now=now,
    )
    record_action(
        actor=actor or agency.user,
        action="subscription.created",
        target=subscription,
        after=snapshot(subscription, SUBSCRIPTION_AUDIT_FIELDS),
        metadata={"zipcodes": [z.zipcode for z in zips], "charged": amount},
        ip=ip,
    )
    retry_unassigned_in(z.zipcode for z in zips)
    return subscription


@transaction.atomic
def change_plan(
    *, agency: Agency, plan_id: int, now: datetime, actor: User | None = None, ip: str | None = None
) -> Subscription:
    """Moves the live subscription to another active plan, effective now (up- or downgrade).

    The unused part of the old monthly price is credited and the rest of the period on
    the new plan's price charged, both prorated by time; the period itself is kept.
    Raises NoLiveSubscription; ValidationError on `plan_id` (unknown or inactive);
    Conflict when it is the current plan or the agency holds more ZIP codes than the new
    plan allows.
    """
    subscription = _require_live_subscription(agency, now=now)
    plan = _available_plan(plan_id)
    if plan.pk == subscription.plan_id:
        raise Conflict("You are already on this plan.", errors={"plan_id": ["You are already on this plan."]})
    held = subscription.territories.count()
    if held > plan.max_zipcodes:
        reason = (
            f"The {plan.name} plan allows {plan.max_zipcodes} ZIP codes and you hold {held}: "
            f"remove {held - plan.max_zipcodes} before changing to it."
        )
        raise Conflict(reason, errors={"plan_id": [reason]})
    before = snapshot(subscription, SUBSCRIPTION_AUDIT_FIELDS)
    old_plan, old_price = subscription.plan, subscription.monthly_price_for(held)
    subscription.fix_prices_from(plan)
    subscription.save(update_fields=["plan", "base_price", "price_per_zipcode", "updated_at"])
    reference, until = f"plan {old_plan.pk} -> {plan.pk}", _day(subscription.current_period_end)
    credit = _bill_rest_of_period(
        subscription,
        EntryKind.CREDIT,
        EntryReason.PLAN_CHANGED,
        old_price,
        f"Unused {old_plan.name} plan time until {until}",
        now=now,
        reference=reference,
    )
    charge = _bill_rest_of_period(
        subscription,
        EntryKind.CHARGE,
        EntryReason.PLAN_CHANGED,
        subscription.monthly_price_for(held),
        f"{plan.name} plan, {_count(held)}, until {until} (prorated)",
        now=now,
        reference=reference,
    )
    record_action(
        actor=actor or agency.user,
        action="subscription.plan_changed",
        target=subscription,
        before=before,
        after=snapshot(subscription, SUBSCRIPTION_AUDIT_FIELDS),
        metadata={"credited": credit, "charged": charge},
        ip=ip,
    )
    retry_unassigned_in(subscription.territories.values_list("zipcode", flat=True))  # the cap may have grown
    return subscription


@transaction.atomic
def add_territory(
    *, agency: Agency, zipcode: str, now: datetime, actor: User | None = None, ip: str | None = None
) -> Territory:
    """Adds a ZIP code to the live subscription and charges its price for the rest of the period.

    Raises ValidationError on `zipcode` (not a real US ZIP code); NoLiveSubscription;
    Conflict when the agency already holds the ZIP code or the plan's limit is reached.
    """
    info = _zip_info(zipcode, field="zipcode")
    subscription = _require_live_subscription(agency, now=now)
    held = set(subscription.territories.values_list("zipcode", flat=True))
    if info.zipcode in held:
        message = f"You already hold ZIP code {info.zipcode}."
        raise Conflict(message, errors={"zipcode": [message]})
    if len(held) >= subscription.plan.max_zipcodes:
        message = (
            f"Your {subscription.plan.name} plan allows {subscription.plan.max_zipcodes} ZIP codes and you hold "
            f"{len(held)}: remove one or change plan first."
        )
        raise Conflict(message, errors={"zipcode": [message]})
    territory = Territory.objects.create(
        subscription=subscription, zipcode=info.zipcode, city=info.city, state=info.state, created_at=now
    )
    amount = _bill_rest_of_period(
        subscription,
        EntryKind.CHARGE,
        EntryReason.TERRITORY_ADDED,
        subscription.price_per_zipcode,
        f"ZIP code {info.zipcode} ({info.city}, {info.state}) until {_day(subscription.current_period_end)} (prorated)",
        now=now,
        reference=info.zipcode,
    )
    record_action(
        actor=actor or agency.user,
        action="territory.added",
        target=territory,
        after=snapshot(territory, TERRITORY_AUDIT_FIELDS),
        metadata={"charged": amount},
        ip=ip,
    )
    retry_unassigned_in([territory.zipcode])
    return territory


@transaction.atomic
def remove_territory(
    *, agency: Agency, zipcode: str, now: datetime, actor: User | None = None, ip: str | None = None
) -> Territory:
    """Removes a ZIP code from the live subscription and credits its price for the rest of the period.

    Only the format is checked, not the dataset, so a ZIP code that has left the dataset
    can still be removed. Raises ValidationError on `zipcode` (not five digits) and
    NotFound when the agency does not hold it. Returns the removed territory (unsaved).
    """
    zipcode = (zipcode or "").strip()
    if not ZIP_PATTERN.match(zipcode):
        raise ValidationError({"zipcode": ["Enter a five-digit US ZIP code."]})
    subscription = _lock_live_subscription(agency, now=now)
    territory = subscription.territories.filter(zipcode=zipcode).first() if subscription else None
    if territory is None:
        raise NotFound(f"You do not hold ZIP code {zipcode}.")
    amount = _bill_rest_of_period(
        subscription,
        EntryKind.CREDIT,
        EntryReason.TERRITORY_REMOVED,
        subscription.price_per_zipcode,
        f"ZIP code {zipcode} removed: unused time until {_day(subscription.current_period_end)}",
        now=now,
        reference=zipcode,
    )
    record_action(
        actor=actor or agency.user,
        action="territory.removed",
        target=territory,
        before=snapshot(territory, TERRITORY_AUDIT_FIELDS),
        metadata={"credited": amount},
        ip=ip,
    )
    territory.delete()
    return territory


@transaction.atomic
def cancel_subscription(
    *, agency: Agency, immediate: bool = False, now: datetime, actor: User | None = None, ip: str | None = None
) -> Subscription:
    """Cancels the live subscription.

    By default it stays active until the end of the period and then expires (no credit).
    With `immediate` it ends now and the unused part of the period is credited, prorated
    by time. Raises NoLiveSubscription; Conflict when a cancellation at period end is
    asked for twice.
    """
    subscription = _require_live_subscription(agency, now=now)
    before = snapshot(subscription, SUBSCRIPTION_AUDIT_FIELDS)
    metadata = {}
    if immediate:
        credit = _bill_rest_of_period(
            subscription,
            EntryKind.CREDIT,
            EntryReason.CANCELLED,
            subscription.monthly_price_for(subscription.territories.count()),
            f"Cancelled: unused time until {_day(subscription.current_period_end)}",
            now=now,
        )
        subscription.status = SubscriptionStatus.CANCELLED
        subscription.cancelled_at = subscription.ended_at = now
        subscription.save(update_fields=["status", "cancelled_at", "ended_at", "updated_at"])
        action, metadata = "subscription.cancelled", {"credited": credit}
    else:
        if subscription.cancel_at_period_end:
            raise Conflict(f"Your subscription already ends on {_day(subscription.current_period_end)}.")
        subscription.cancel_at_period_end = True
        subscription.cancelled_at = now
        subscription.save(update_fields=["cancel_at_period_end", "cancelled_at", "updated_at"])
        action = "subscription.cancel_scheduled"
    record_action(
        actor=actor or agency.user,
        action=action,
        target=subscription,
        before=before,
        after=snapshot(subscription, SUBSCRIPTION_AUDIT_FIELDS),
        metadata=metadata,
        ip=ip,
    )
    notify(
        agency_id=agency.pk,
        kind=NotificationKind.SUBSCRIPTION_CANCELLED,
        now=now,
        title="Subscription cancelled",
        body="Your subscription has ended."
        if immediate
        else f"Your subscription ends on {_day(subscription.current_period_end)}.",
        data={"subscription_id": subscription.pk},
    )
    return subscription


# --- Renewal ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenewalSummary:
    renewed: int = 0
    expired: int = 0
    failed: int = 0


def renew_subscriptions(*, now: datetime) -> RenewalSummary:
    """Renews every live subscription whose period ended by `now`, or expires it when cancelled at period end.

    A work queue: each subscription is claimed with SELECT ... FOR UPDATE SKIP LOCKED
    and settled in its own transaction, so concurrent runs share the work and never
    settle one subscription twice; the ledger's unique period charge makes a second
    charge for a period impossible even so. A subscription that fails is logged, left
    for the next run, and does not stop the others. Safe to run at any time and often.
    """
    renewed = expired = 0
    failed: list[int] = []
    while True:
        with transaction.atomic():
            subscription = (
                Subscription.objects.due(now)
                .exclude(pk__in=failed)
                .select_for_update(skip_locked=True, of=("self",))
                .select_related("plan")
                .order_by("current_period_end", "id")
                .first()
            )
            if subscription is None:
                break
            try:
                with transaction.atomic():
                    outcome = _settle_period(subscription, now=now)
            except Exception:
                logger.exception("renewal of subscription %s failed", subscription.pk)
                failed.append(subscription.pk)
                continue
        if outcome == "renewed":
            renewed += 1
        elif outcome == "expired":
            expired += 1
    return RenewalSummary(renewed=renewed, expired=expired, failed=len(failed))


def _settle_period(subscription: Subscription, *, now: datetime) -> str | None:
    """Brings a live subscription whose period has ended up to date; the caller holds its row lock.

    Cancelled at period end: it expires when the period ended. Otherwise it rolls to the
    period that contains `now` and that period is charged at the plan's prices of now.
    Periods that passed entirely while no renewal ran are not charged: the subscription
    covered no leads then. Returns "renewed", "expired" or None (nothing was due, or the
    period had already been charged).
    """
    if not subscription.is_live or subscription.current_period_end > now:
        return None
    before = snapshot(subscription, SUBSCRIPTION_AUDIT_FIELDS)
    if subscription.cancel_at_period_end:
        subscription.status = SubscriptionStatus.EXPIRED
        subscription.ended_at = subscription.current_period_end
        subscription.save(update_fields=["status", "ended_at", "updated_at"])
        record_action(
            actor=None,
            action="subscription.expired",
            target=subscription,
            before=before,
            after=snapshot(subscription, SUBSCRIPTION_AUDIT_FIELDS),
        )
        return "expired"
    start, end = period_containing(subscription.started_at, now)
    subscription.current_period_start, subscription.current_period_end = start, end
    subscription.fix_prices_from(subscription.plan)
    subscription.save(
        update_fields=["current_period_start", "current_period_end", "base_price", "price_per_zipcode", "updated_at"]
    )
    held = subscription.territories.count()
    amount = subscription.monthly_price_for(held)
    try:
        with transaction.atomic():
            _post(
                subscription,
                EntryKind.CHARGE,
                EntryReason.RENEWAL,
                amount,
                f"Renewal, {subscription.plan.name} plan, {_count(held)}: {_span(start, end)}",
                period_start=start,
                now=now,
            )
    except IntegrityError:
        if not LedgerEntry.objects.filter(
            subscription=subscription, kind=EntryKind.CHARGE, reason__in=PERIOD_CHARGE_REASONS, period_start=start
        ).exists():
            raise
        logger.warning("period %s of subscription %s was already charged", start, subscription.pk)
        return None
    record_action(
        actor=None,
        action="subscription.renewed",
        target=subscription,
        before=before,
        after=snapshot(subscription, SUBSCRIPTION_AUDIT_FIELDS),
        metadata={"charged": amount},
    )
    retry_unassigned_in(subscription.territories.values_list("zipcode", flat=True))  # a fresh lead cap
    notify(
        agency_id=subscription.agency_id,
        kind=NotificationKind.SUBSCRIPTION_RENEWED,
        now=now,
        title="Subscription renewed",
        body=f"Renewed until {_day(end)}: {amount} USD charged.",
        data={"subscription_id": subscription.pk},
    )
    if LedgerEntry.objects.for_agency(subscription.agency).balance() > 0:
        notify(
            agency_id=subscription.agency_id,
            kind=NotificationKind.PAYMENT_DUE,
            now=now,
            title="Payment due",
            body="Your account has a balance to pay.",
            data={"subscription_id": subscription.pk},
            dedupe_key=f"payment-due:{subscription.pk}:{start:%Y-%m-%d}",
        )
    return "renewed"


# --- Plans --------------------------------------------------------------------------------


@transaction.atomic
def create_plan(*, actor: User | None, fields: dict, ip: str | None = None) -> Plan:
    """Creates a plan from PLAN_FIELDS. Raises ValidationError (unknown field, invalid value, name taken)."""
    _refuse_unknown_plan_fields(fields)
    plan = Plan(**fields)
    _save_plan(plan)
    record_action(actor=actor, action="plan.created", target=plan, after=snapshot(plan, PLAN_FIELDS), ip=ip)
    transaction.on_commit(invalidate_plan_catalogue)
    return plan


@transaction.atomic
def update_plan(*, actor: User | None, plan_id: int, changes: dict, ip: str | None = None) -> Plan:
    """Changes a plan. Prices apply to subscribers from their next renewal; a lower
    `max_zipcodes` keeps what subscribers hold but stops them adding more.

    Raises NotFound; ValidationError (unknown field, invalid value, name taken).
    """
    _refuse_unknown_plan_fields(changes)
    plan = _locked_plan(plan_id, deleting=False)
    before = snapshot(plan, PLAN_FIELDS)
    for field, value in changes.items():
        setattr(plan, field, value)
    _save_plan(plan)
    record_action(
        actor=actor, action="plan.updated", target=plan, before=before, after=snapshot(plan, PLAN_FIELDS), ip=ip
    )
    transaction.on_commit(invalidate_plan_catalogue)
    return plan


@dataclass(frozen=True)
class PlanRemoval:
    plan: Plan
    deleted: bool
    live_subscriptions: int


@transaction.atomic
def delete_plan(*, actor: User | None, plan_id: int, ip: str | None = None) -> PlanRemoval:
    """Deletes a plan nobody ever subscribed to; any other plan is deactivated instead.

    A deactivated plan leaves the catalogue while its subscriptions continue (they and
    their billing history keep referring to it). Raises NotFound.
    """
    plan = _locked_plan(plan_id, deleting=True)
    before = snapshot(plan, PLAN_FIELDS)
    live = plan.subscriptions.live().count()
    if live or plan.subscriptions.exists():
        if plan.is_active:
            plan.is_active = False
            plan.save(update_fields=["is_active", "updated_at"])
        record_action(
            actor=actor,
            action="plan.deactivated",
            target=plan,
            before=before,
            after=snapshot(plan, PLAN_FIELDS),
            metadata={"live_subscriptions": live},
            ip=ip,
        )
        removal = PlanRemoval(plan=plan, deleted=False, live_subscriptions=live)
    else:
        record_action(actor=actor, action="plan.deleted", target=plan, before=before, ip=ip)
        plan.delete()
        removal = PlanRemoval(plan=plan, deleted=True, live_subscriptions=0)
    transaction.on_commit(invalidate_plan_catalogue)
    return removal


# --- Helpers ------------------------------------------------------------------------------


def _lock_live_subscription(agency: Agency, *, now: datetime) -> Subscription | None:
    """The agency's live subscription, locked and brought up to date, or None."""
    subscription = (
        Subscription.objects.for_agency(agency).live().select_for_update(of=("self",)).select_related("plan").first()
    )
    if subscription is None:
        return None
    _settle_period(subscription, now=now)
    return subscription if subscription.is_live else None


def _require_live_subscription(agency: Agency, *, now: datetime) -> Subscription:
    subscription = _lock_live_subscription(agency, now=now)
    if subscription is None:
        raise NoLiveSubscription()
    return subscription


def _available_plan(plan_id: int) -> Plan:
    """The active plan `plan_id`, locked against a concurrent change or deletion until commit."""
    plan = Plan.objects.select_for_update(no_key=True).filter(pk=plan_id).first()
    if plan is None:
        raise ValidationError({"plan_id": ["Unknown plan."]})
    if not plan.is_active:
        raise ValidationError({"plan_id": ["This plan is no longer offered."]})
    return plan


def _locked_plan(plan_id: int, *, deleting: bool) -> Plan:
    # Only a deletion conflicts with subscriptions being written that refer to the plan.
    plan = Plan.objects.select_for_update(no_key=not deleting).filter(pk=plan_id).first()
    if plan is None:
        raise NotFound("Plan not found.")
    return plan


def _zip_info(value: str, *, field: str) -> ZipInfo:
    try:
        return lookup_zip(value)
    except InvalidZip as exc:
        raise ValidationError({field: [str(exc)]}) from exc


def _zip_infos(values: list[str], *, plan: Plan) -> list[ZipInfo]:
    if not values:
        raise ValidationError({"zipcodes": ["Choose at least one ZIP code."]})
    infos = [_zip_info(value, field="zipcodes") for value in values]
    seen: set[str] = set()
    for info in infos:
        if info.zipcode in seen:
            raise ValidationError({"zipcodes": [f"ZIP code {info.zipcode} is listed twice."]})
        seen.add(info.zipcode)
    if len(infos) > plan.max_zipcodes:
        raise ValidationError({"zipcodes": [f"The {plan.name} plan allows at most {plan.max_zipcodes} ZIP codes."]})
    return infos


def _post(
    subscription: Subscription,
    kind: EntryKind,
    reason: EntryReason,
    amount: Decimal,
    description: str,
    *,
    now: datetime,
    period_start: datetime | None = None,
    reference: str = "",
) -> LedgerEntry:
    """Writes a ledger entry for the subscription's agency, covering `period_start` (default now) to the period end."""
    return LedgerEntry.objects.create(
        agency_id=subscription.agency_id,
        subscription=subscription,
        kind=kind,
        reason=reason,
        reference=reference,
        amount=amount,
        description=description,
        period_start=period_start or now,
        period_end=subscription.current_period_end,
        created_at=now,
    )


def _bill_rest_of_period(
    subscription: Subscription,
    kind: EntryKind,
    reason: EntryReason,
    monthly_amount: Decimal,
    description: str,
    *,
    now: datetime,
    reference: str = "",
) -> Decimal:
    """Posts `monthly_amount` prorated to the rest of the current period; returns it (0.00: nothing posted)."""
    amount = prorate(
        monthly_amount,
        period_start=subscription.current_period_start,
        period_end=subscription.current_period_end,
        now=now,
    )
    if amount:
        _post(subscription, kind, reason, amount, description, now=now, reference=reference)
    return amount


def _save_plan(plan: Plan) -> None:
    plan.full_clean()
    try:
        with transaction.atomic():
            plan.save()
    except IntegrityError as exc:  # a concurrent create took the name after full_clean looked
        raise ValidationError({"name": ["A plan with this name already exists."]}) from exc


def _refuse_unknown_plan_fields(fields: dict) -> None:
    unknown = sorted(set(fields) - set(PLAN_FIELDS))
    if unknown:
        raise ValidationError({field: ["This field cannot be set."] for field in unknown})


def _day(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d}"


def _span(start: datetime, end: datetime) -> str:
    return f"{_day(start)} to {_day(end)}"


def _count(zipcodes: int) -> str:
    return f"{zipcodes} ZIP code{'' if zipcodes == 1 else 's'}"
