"""The subscription, territory, renewal and plan use cases against the database."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from agencies.tests.factories import AgencyFactory, StaffUserFactory
from audit.models import AuditLog
from leadmarket.errors import Conflict, NotFound
from subscriptions import services
from subscriptions.models import (
    EntryKind,
    EntryReason,
    ImmutableEntry,
    LedgerEntry,
    Plan,
    Subscription,
    SubscriptionStatus,
    Territory,
)

from .conftest import FEB_1, JAN_1
from .factories import PlanFactory

pytestmark = pytest.mark.django_db

MID_JAN = datetime(2025, 1, 16, 12, tzinfo=UTC)  # 15.5 of 31 days left
LAST_DAY = datetime(2025, 1, 31, tzinfo=UTC)  # 1 of 31 days left
MAR_1 = datetime(2025, 3, 1, tzinfo=UTC)


def entries(agency) -> list[tuple[str, str, Decimal]]:
    return [
        (entry.kind, entry.reason, entry.amount)
        for entry in LedgerEntry.objects.for_agency(agency).order_by("created_at", "id")
    ]


def balance(agency) -> Decimal:
    return LedgerEntry.objects.for_agency(agency).balance()


def subscribe(agency, plan, zipcodes=("10001",), now=JAN_1):
    return services.subscribe(agency=agency, plan_id=plan.pk, zipcodes=list(zipcodes), now=now)


@pytest.fixture
def plan():
    return PlanFactory(name="Basic", price_per_zipcode=Decimal("31.00"), max_zipcodes=3)


# --- Subscribe ----------------------------------------------------------------------------


def test_subscribe_starts_a_monthly_period_now_and_charges_it_in_full(agency):
    plan = PlanFactory(base_price=Decimal("20.00"), price_per_zipcode=Decimal("12.50"), max_zipcodes=3)

    subscription = subscribe(agency, plan, ["10001", "90210"], now=JAN_1)

    assert subscription.status == SubscriptionStatus.ACTIVE
    assert (subscription.current_period_start, subscription.current_period_end) == (JAN_1, FEB_1)
    assert entries(agency) == [(EntryKind.CHARGE, EntryReason.SUBSCRIPTION_STARTED, Decimal("45.00"))]
    entry = LedgerEntry.objects.get()
    assert (entry.period_start, entry.period_end) == (JAN_1, FEB_1)
    assert balance(agency) == Decimal("45.00")


def test_subscribe_fills_city_and_state_from_the_zip_dataset(agency, plan):
    subscription = subscribe(agency, plan, ["10001", "02108"])

    territories = {t.zipcode: (t.city, t.state) for t in subscription.territories.all()}
    assert territories == {"10001": ("New York", "NY"), "02108": ("Boston", "MA")}


def test_subscribing_while_subscribed_is_a_conflict_and_changes_nothing(agency, plan):
    subscribe(agency, plan)

    with pytest.raises(Conflict):
        subscribe(agency, plan, ["90210"], now=MID_JAN)

    assert Subscription.objects.count() == 1
    assert len(entries(agency)) == 1


def test_the_database_allows_one_live_subscription_per_agency(agency, plan):
    live = subscribe(agency, plan)
    twin = Subscription(
        agency=agency,
        plan=plan,
        base_price=live.base_price,
        price_per_zipcode=live.price_per_zipcode,
        started_at=JAN_1,
        current_period_start=JAN_1,
        current_period_end=FEB_1,
    )

    with pytest.raises(IntegrityError), transaction.atomic():
        twin.save()


def test_subscribing_to_an_inactive_or_unknown_plan_is_refused_on_plan_id(agency):
    inactive = PlanFactory(is_active=False)

    with pytest.raises(ValidationError) as inactive_error:
        subscribe(agency, inactive)
    with pytest.raises(ValidationError) as unknown_error:
        services.subscribe(agency=agency, plan_id=999_999, zipcodes=["10001"], now=JAN_1)

    assert "plan_id" in inactive_error.value.message_dict
    assert "plan_id" in unknown_error.value.message_dict
    assert not Subscription.objects.exists()


@pytest.mark.parametrize(
    "zipcodes",
    [
        [],  # none
        ["10001", "90210", "60601", "94105"],  # more than max_zipcodes (3)
        ["10001", "10001"],  # repeated
        ["10001", "1000"],  # malformed
        ["00000"],  # well formed, not a US ZIP code
    ],
)
def test_bad_zipcodes_are_refused_on_zipcodes(agency, plan, zipcodes):
    with pytest.raises(ValidationError) as error:
        subscribe(agency, plan, zipcodes)

    assert "zipcodes" in error.value.message_dict
    assert not Subscription.objects.exists()
    assert not LedgerEntry.objects.exists()


# --- Change plan --------------------------------------------------------------------------


def test_upgrade_credits_the_unused_old_price_and_charges_the_new_one_prorated(agency, plan):
    bigger = PlanFactory(name="Bigger", base_price=Decimal("31.00"), price_per_zipcode=Decimal("62.00"))
    subscribe(agency, plan, ["10001"])

    subscription = services.change_plan(agency=agency, plan_id=bigger.pk, now=MID_JAN)

    assert subscription.plan == bigger
    assert (subscription.current_period_start, subscription.current_period_end) == (JAN_1, FEB_1)
    assert (subscription.base_price, subscription.price_per_zipcode) == (Decimal("31.00"), Decimal("62.00"))
    assert entries(agency) == [
        (EntryKind.CHARGE, EntryReason.SUBSCRIPTION_STARTED, Decimal("31.00")),
        (EntryKind.CREDIT, EntryReason.PLAN_CHANGED, Decimal("15.50")),  # 31.00 x 15.5/31
        (EntryKind.CHARGE, EntryReason.PLAN_CHANGED, Decimal("46.50")),  # 93.00 x 15.5/31
    ]
    assert balance(agency) == Decimal("62.00")


def test_downgrade_to_a_plan_too_small_for_the_held_zipcodes_is_a_conflict_that_says_why(agency, plan):
    small = PlanFactory(name="Small", max_zipcodes=1)
    subscribe(agency, plan, ["10001", "90210", "60601"])

    with pytest.raises(Conflict) as error:
        services.change_plan(agency=agency, plan_id=small.pk, now=MID_JAN)

    assert "allows 1 ZIP codes and you hold 3" in error.value.message
    assert "remove 2" in error.value.message
    assert "plan_id" in error.value.errors
    assert Subscription.objects.get().plan == plan
    assert len(entries(agency)) == 1


def test_downgrade_that_fits_credits_more_than_it_charges(agency, plan):
    cheaper = PlanFactory(name="Cheaper", price_per_zipcode=Decimal("15.50"), max_zipcodes=1)
    subscribe(agency, plan, ["10001"])

    services.change_plan(agency=agency, plan_id=cheaper.pk, now=MID_JAN)

    assert entries(agency)[1:] == [
        (EntryKind.CREDIT, EntryReason.PLAN_CHANGED, Decimal("15.50")),
        (EntryKind.CHARGE, EntryReason.PLAN_CHANGED, Decimal("7.75")),
    ]


def test_changing_to_the_current_plan_or_an_inactive_one_is_refused(agency, plan):
    inactive = PlanFactory(is_active=False)
    subscribe(agency, plan)

    with pytest.raises(Conflict):
        services.change_plan(agency=agency, plan_id=plan.pk, now=MID_JAN)
    with pytest.raises(ValidationError):
        services.change_plan(agency=agency, plan_id=inactive.pk, now=MID_JAN)


def test_changing_plan_without_a_subscription_is_a_conflict(agency, plan):
    with pytest.raises(services.NoLiveSubscription):
        services.change_plan(agency=agency, plan_id=plan.pk, now=MID_JAN)


# --- Territories --------------------------------------------------------------------------


def test_adding_a_territory_mid_period_charges_the_rest_of_the_period(agency, plan):
    subscribe(agency, plan, ["10001"])

    territory = services.add_territory(agency=agency, zipcode="60601", now=MID_JAN)

    assert (territory.zipcode, territory.city, territory.state) == ("60601", "Chicago", "IL")
    assert entries(agency)[-1] == (EntryKind.CHARGE, EntryReason.TERRITORY_ADDED, Decimal("15.50"))
    assert LedgerEntry.objects.order_by("id").last().reference == "60601"


def test_adding_a_territory_on_the_last_day_charges_one_day(agency, plan):
    subscribe(agency, plan, ["10001"])

    services.add_territory(agency=agency, zipcode="60601", now=LAST_DAY)

    assert entries(agency)[-1] == (EntryKind.CHARGE, EntryReason.TERRITORY_ADDED, Decimal("1.00"))


def test_removing_a_territory_credits_the_rest_of_the_period(agency, plan):
    subscribe(agency, plan, ["10001", "90210"])

    removed = services.remove_territory(agency=agency, zipcode="90210", now=MID_JAN)

    assert removed.zipcode == "90210"
    assert list(Territory.objects.values_list("zipcode", flat=True)) == ["10001"]
    assert entries(agency)[-1] == (EntryKind.CREDIT, EntryReason.TERRITORY_REMOVED, Decimal("15.50"))
    assert balance(agency) == Decimal("46.50")


def test_adding_beyond_the_plan_limit_is_a_conflict(agency, plan):
    subscribe(agency, plan, ["10001", "90210", "60601"])

    with pytest.raises(Conflict) as error:
        services.add_territory(agency=agency, zipcode="94105", now=MID_JAN)

    assert "zipcode" in error.value.errors
    assert Territory.objects.count() == 3
    assert len(entries(agency)) == 1


def test_adding_a_zipcode_already_held_is_a_conflict(agency, plan):
    subscribe(agency, plan, ["10001"])

    with pytest.raises(Conflict):
        services.add_territory(agency=agency, zipcode="10001", now=MID_JAN)


def test_adding_an_unknown_zipcode_is_refused_on_zipcode(agency, plan):
    subscribe(agency, plan, ["10001"])

    with pytest.raises(ValidationError) as error:
        services.add_territory(agency=agency, zipcode="99999", now=MID_JAN)

    assert "zipcode" in error.value.message_dict


def test_removing_a_zipcode_not_held_is_not_found(agency, plan):
    subscribe(agency, plan, ["10001"])
    other = AgencyFactory()
    subscribe(other, plan, ["90210"])

    with pytest.raises(NotFound):
        services.remove_territory(agency=agency, zipcode="90210", now=MID_JAN)
    with pytest.raises(NotFound):
        services.remove_territory(agency=AgencyFactory(), zipcode="10001", now=MID_JAN)

    assert Territory.objects.count() == 2


def test_a_swap_at_the_plan_limit_is_remove_then_add(agency):
    single = PlanFactory(price_per_zipcode=Decimal("31.00"), max_zipcodes=1)
    subscribe(agency, single, ["10001"])

    services.remove_territory(agency=agency, zipcode="10001", now=MID_JAN)
    services.add_territory(agency=agency, zipcode="90210", now=MID_JAN)

    assert balance(agency) == Decimal("31.00")


# --- Cancel -------------------------------------------------------------------------------


def test_cancel_by_default_keeps_the_subscription_until_period_end_then_expires_it(agency, plan):
    subscribe(agency, plan)

    subscription = services.cancel_subscription(agency=agency, now=MID_JAN)

    assert subscription.status == SubscriptionStatus.ACTIVE
    assert subscription.cancel_at_period_end is True
    assert subscription.cancelled_at == MID_JAN
    assert len(entries(agency)) == 1  # no credit

    summary = services.renew_subscriptions(now=FEB_1)

    subscription.refresh_from_db()
    assert (summary.renewed, summary.expired) == (0, 1)
    assert subscription.status == SubscriptionStatus.EXPIRED
    assert subscription.ended_at == FEB_1
    assert len(entries(agency)) == 1  # and no renewal charge
    assert not Territory.objects.live().exists()


def test_cancel_immediately_ends_now_with_a_prorated_credit(agency, plan):
    subscribe(agency, plan, ["10001", "90210"])

    subscription = services.cancel_subscription(agency=agency, immediate=True, now=MID_JAN)

    assert subscription.status == SubscriptionStatus.CANCELLED
    assert subscription.ended_at == MID_JAN
    assert entries(agency)[-1] == (EntryKind.CREDIT, EntryReason.CANCELLED, Decimal("31.00"))
    assert balance(agency) == Decimal("31.00")
    assert not Subscription.objects.live().exists()


def test_an_agency_can_subscribe_again_after_cancelling(agency, plan):
    subscribe(agency, plan)
    services.cancel_subscription(agency=agency, immediate=True, now=MID_JAN)

    again = subscribe(agency, plan, ["90210"], now=MID_JAN)

    assert again.status == SubscriptionStatus.ACTIVE
    assert Subscription.objects.filter(agency=agency).count() == 2


def test_cancel_at_period_end_twice_is_a_conflict_but_immediate_after_it_works(agency, plan):
    subscribe(agency, plan)
    services.cancel_subscription(agency=agency, now=MID_JAN)

    with pytest.raises(Conflict):
        services.cancel_subscription(agency=agency, now=MID_JAN)
    subscription = services.cancel_subscription(agency=agency, immediate=True, now=LAST_DAY)

    assert subscription.status == SubscriptionStatus.CANCELLED
    assert entries(agency)[-1] == (EntryKind.CREDIT, EntryReason.CANCELLED, Decimal("1.00"))


def test_cancel_without_a_subscription_is_a_conflict(agency):
    with pytest.raises(services.NoLiveSubscription):
        services.cancel_subscription(agency=agency, now=JAN_1)


# --- Renewal ------------------------------------------------------------------------------


def test_renewal_rolls_the_period_and_charges_the_next_month(agency, plan):
    subscribe(agency, plan, ["10001", "90210"])

    summary = services.renew_subscriptions(now=FEB_1)

    subscription = Subscription.objects.get()
    assert (summary.renewed, summary.expired, summary.failed) == (1, 0, 0)
    assert (subscription.current_period_start, subscription.current_period_end) == (FEB_1, MAR_1)
    assert entries(agency)[-1] == (EntryKind.CHARGE, EntryReason.RENEWAL, Decimal("62.00"))
    entry = LedgerEntry.objects.order_by("id").last()
    assert (entry.period_start, entry.period_end) == (FEB_1, MAR_1)


def test_renewal_before_the_period_ends_does_nothing(agency, plan):
    subscribe(agency, plan)

    summary = services.renew_subscriptions(now=FEB_1 - timedelta(microseconds=1))

    assert summary == services.RenewalSummary()
    assert len(entries(agency)) == 1


def test_renewing_twice_charges_a_period_once(agency, plan):
    subscribe(agency, plan)

    first = services.renew_subscriptions(now=FEB_1)
    second = services.renew_subscriptions(now=FEB_1 + timedelta(hours=1))

    assert (first.renewed, second.renewed) == (1, 0)
    assert LedgerEntry.objects.filter(reason=EntryReason.RENEWAL).count() == 1


def test_the_ledger_refuses_a_second_charge_for_the_same_period(agency, plan):
    subscription = subscribe(agency, plan)
    services.renew_subscriptions(now=FEB_1)

    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(
            agency=agency,
            subscription=subscription,
            kind=EntryKind.CHARGE,
            reason=EntryReason.RENEWAL,
            amount=Decimal("31.00"),
            description="twice",
            period_start=FEB_1,
            period_end=MAR_1,
        )


def test_settling_from_a_stale_copy_charges_once_thanks_to_the_constraint(agency, plan):
    # Two workers that both think the period is due (as if the row lock had failed).
    subscribe(agency, plan)
    first, second = Subscription.objects.get(), Subscription.objects.get()

    assert services._settle_period(first, now=FEB_1) == "renewed"
    assert services._settle_period(second, now=FEB_1) is None

    assert LedgerEntry.objects.filter(reason=EntryReason.RENEWAL).count() == 1


def test_renewal_charges_only_the_current_period_after_missed_runs(agency, plan):
    subscribe(agency, plan)
    april_15 = datetime(2025, 4, 15, tzinfo=UTC)

    services.renew_subscriptions(now=april_15)

    subscription = Subscription.objects.get()
    assert subscription.current_period_start == datetime(2025, 4, 1, tzinfo=UTC)
    assert subscription.current_period_end == datetime(2025, 5, 1, tzinfo=UTC)
    assert LedgerEntry.objects.filter(reason=EntryReason.RENEWAL).count() == 1


def test_a_plan_price_change_applies_from_the_next_renewal(agency, plan):
    staff = StaffUserFactory()
    subscribe(agency, plan, ["10001", "90210"])
    services.update_plan(actor=staff, plan_id=plan.pk, changes={"price_per_zipcode": Decimal("62.00")})

    services.remove_territory(agency=agency, zipcode="90210", now=MID_JAN)
    services.renew_subscriptions(now=FEB_1)

    assert entries(agency)[1:] == [
        (EntryKind.CREDIT, EntryReason.TERRITORY_REMOVED, Decimal("15.50")),  # at the price it was charged at
        (EntryKind.CHARGE, EntryReason.RENEWAL, Decimal("62.00")),  # one ZIP at the new price
    ]


def test_renewal_continues_on_a_deactivated_plan(agency, plan):
    subscribe(agency, plan)
    services.delete_plan(actor=StaffUserFactory(), plan_id=plan.pk)

    services.renew_subscriptions(now=FEB_1)

    assert entries(agency)[-1] == (EntryKind.CHARGE, EntryReason.RENEWAL, Decimal("31.00"))


def test_an_operation_after_the_period_ended_renews_first(agency, plan):
    subscribe(agency, plan, ["10001"])
    feb_15 = datetime(2025, 2, 15, tzinfo=UTC)  # 14 of 28 days left

    services.add_territory(agency=agency, zipcode="90210", now=feb_15)

    assert entries(agency) == [
        (EntryKind.CHARGE, EntryReason.SUBSCRIPTION_STARTED, Decimal("31.00")),
        (EntryKind.CHARGE, EntryReason.RENEWAL, Decimal("31.00")),
        (EntryKind.CHARGE, EntryReason.TERRITORY_ADDED, Decimal("15.50")),
    ]


def test_subscribing_after_a_period_end_cancellation_lapsed_works_before_the_sweep(agency, plan):
    subscribe(agency, plan)
    services.cancel_subscription(agency=agency, now=MID_JAN)

    again = subscribe(agency, plan, ["90210"], now=FEB_1 + timedelta(days=3))

    assert Subscription.objects.get(pk=again.pk).status == SubscriptionStatus.ACTIVE
    assert Subscription.objects.exclude(pk=again.pk).get().status == SubscriptionStatus.EXPIRED


def test_a_failing_subscription_does_not_stop_the_others(agency, plan, monkeypatch):
    broken = subscribe(agency, plan)
    healthy_agency = AgencyFactory()
    subscribe(healthy_agency, plan)
    settle = services._settle_period

    def settle_or_fail(subscription, *, now):
        if subscription.pk == broken.pk:
            raise RuntimeError("boom")
        return settle(subscription, now=now)

    monkeypatch.setattr(services, "_settle_period", settle_or_fail)

    summary = services.renew_subscriptions(now=FEB_1)

    assert (summary.renewed, summary.failed) == (1, 1)
    assert entries(healthy_agency)[-1][1] == EntryReason.RENEWAL
    assert Subscription.objects.get(pk=broken.pk).current_period_end == FEB_1  # left for the next run


# --- Queries for distribution -------------------------------------------------------------


def test_covering_finds_live_subscriptions_in_their_period_holding_the_zipcode(plan):
    holder, other_zip, cancelled, lapsed = AgencyFactory(), AgencyFactory(), AgencyFactory(), AgencyFactory()
    held = subscribe(holder, plan, ["10001", "90210"])
    subscribe(other_zip, plan, ["60601"])
    subscribe(cancelled, plan, ["10001"])
    services.cancel_subscription(agency=cancelled, immediate=True, now=MID_JAN)
    subscribe(lapsed, plan, ["10001"], now=datetime(2024, 12, 1, tzinfo=UTC))  # period ended Jan 1, not renewed

    subscriptions = Subscription.objects.covering("10001", now=MID_JAN).select_related("plan")
    territories = Territory.objects.covering(["10001"], now=MID_JAN)

    assert list(subscriptions) == [held]
    assert subscriptions[0].plan.monthly_lead_cap == plan.monthly_lead_cap
    assert [t.subscription_id for t in territories] == [held.pk]


# --- Ledger -------------------------------------------------------------------------------


def test_ledger_entries_cannot_be_changed_or_deleted(agency, plan):
    subscribe(agency, plan)
    entry = LedgerEntry.objects.get()

    entry.amount = Decimal("0.01")
    with pytest.raises(ImmutableEntry):
        entry.save()
    with pytest.raises(ImmutableEntry):
        entry.delete()
    with pytest.raises(ImmutableEntry):
        LedgerEntry.objects.update(amount=Decimal("0.01"))
    with pytest.raises(ImmutableEntry):
        LedgerEntry.objects.all().delete()

    assert LedgerEntry.objects.get().amount == Decimal("31.00")


def test_running_balance_follows_the_entries(agency, plan):
    subscribe(agency, plan, ["10001", "90210"])
    services.remove_territory(agency=agency, zipcode="90210", now=MID_JAN)
    services.renew_subscriptions(now=FEB_1)

    rows = LedgerEntry.objects.for_agency(agency).with_running_balance().order_by("created_at", "id")

    assert [(row.signed_amount, row.balance) for row in rows] == [
        (Decimal("62.00"), Decimal("62.00")),
        (Decimal("-15.50"), Decimal("46.50")),
        (Decimal("31.00"), Decimal("77.50")),
    ]


# --- Audit --------------------------------------------------------------------------------


def test_every_change_is_audited_with_its_actor(agency, plan):
    bigger = PlanFactory(name="Bigger", max_zipcodes=5)
    subscribe(agency, plan, ["10001"])
    services.add_territory(agency=agency, zipcode="90210", now=MID_JAN)
    services.remove_territory(agency=agency, zipcode="90210", now=MID_JAN)
    services.change_plan(agency=agency, plan_id=bigger.pk, now=MID_JAN)
    services.cancel_subscription(agency=agency, now=MID_JAN)

    logs = list(AuditLog.objects.order_by("id"))

    assert [log.action for log in logs] == [
        "subscription.created",
        "territory.added",
        "territory.removed",
        "subscription.plan_changed",
        "subscription.cancel_scheduled",
    ]
    assert all(log.actor == agency.user for log in logs)
    assert logs[3].changes["plan"] == {"before": plan.pk, "after": bigger.pk}
    assert logs[4].changes["cancel_at_period_end"] == {"before": False, "after": True}


def test_renewal_and_expiry_are_audited_as_the_system(agency, plan):
    subscribe(agency, plan)
    services.renew_subscriptions(now=FEB_1)
    services.cancel_subscription(agency=agency, now=FEB_1)
    services.renew_subscriptions(now=MAR_1)

    renewed, expired = AuditLog.objects.filter(action__in=["subscription.renewed", "subscription.expired"]).order_by(
        "id"
    )

    assert (renewed.action, renewed.actor, renewed.metadata["charged"]) == ("subscription.renewed", None, "31.00")
    assert (expired.action, expired.actor) == ("subscription.expired", None)
    assert expired.changes["status"] == {"before": "active", "after": "expired"}


# --- Plans --------------------------------------------------------------------------------


def test_plan_create_update_and_delete_are_audited():
    staff = StaffUserFactory()

    plan = services.create_plan(
        actor=staff, fields={"name": "New", "price_per_zipcode": Decimal("5.00"), "max_zipcodes": 2}
    )
    services.update_plan(actor=staff, plan_id=plan.pk, changes={"max_zipcodes": 4})
    removal = services.delete_plan(actor=staff, plan_id=plan.pk)

    assert removal.deleted is True
    assert not Plan.objects.exists()
    assert list(AuditLog.objects.order_by("id").values_list("action", "actor")) == [
        ("plan.created", staff.pk),
        ("plan.updated", staff.pk),
        ("plan.deleted", staff.pk),
    ]
    assert AuditLog.objects.get(action="plan.updated").changes == {"max_zipcodes": {"before": 2, "after": 4}}


def test_deleting_a_plan_with_subscribers_deactivates_it(agency, plan):
    subscribe(agency, plan)

    removal = services.delete_plan(actor=StaffUserFactory(), plan_id=plan.pk)

    plan.refresh_from_db()
    assert (removal.deleted, removal.live_subscriptions) == (False, 1)
    assert plan.is_active is False
    assert Subscription.objects.get().status == SubscriptionStatus.ACTIVE
    assert AuditLog.objects.filter(action="plan.deactivated").exists()


def test_deleting_a_plan_with_only_past_subscribers_deactivates_it(agency, plan):
    subscribe(agency, plan)
    services.cancel_subscription(agency=agency, immediate=True, now=MID_JAN)

    removal = services.delete_plan(actor=StaffUserFactory(), plan_id=plan.pk)

    assert (removal.deleted, removal.live_subscriptions) == (False, 0)
    assert Plan.objects.filter(pk=plan.pk, is_active=False).exists()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "X", "price_per_zipcode": Decimal("-1.00"), "max_zipcodes": 1}, "price_per_zipcode"),
        ({"name": "X", "price_per_zipcode": Decimal("1.00"), "max_zipcodes": 0}, "max_zipcodes"),
        (
            {"name": "X", "price_per_zipcode": Decimal("1.00"), "max_zipcodes": 1, "monthly_lead_cap": 0},
            "monthly_lead_cap",
        ),
        ({"name": "X", "price_per_zipcode": Decimal("1.00"), "max_zipcodes": 1, "status": "x"}, "status"),
    ],
)
def test_invalid_plans_are_refused_with_the_field(fields, field):
    with pytest.raises(ValidationError) as error:
        services.create_plan(actor=None, fields=fields)

    assert field in error.value.message_dict


def test_plan_names_are_unique(plan):
    with pytest.raises(ValidationError) as error:
        services.create_plan(
            actor=None, fields={"name": plan.name, "price_per_zipcode": Decimal("1"), "max_zipcodes": 1}
        )

    assert "name" in error.value.message_dict
