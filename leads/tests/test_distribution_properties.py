"""A property-based check of the engine: Hypothesis drives random sequences of subscribe,
unsubscribe, ingest, accept, reject and expire, and the invariants are checked after
every step."""

from collections import Counter
from datetime import timedelta

import pytest
from django.db import transaction
from django.test import TestCase
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from agencies.tests.factories import AgencyFactory
from leads import distribution
from leads.models import Offer, OfferStatus, RejectReason
from leads.tests.factories import LeadFactory, PortalFactory, distribute_lead
from subscriptions import services as subscription_services
from subscriptions.models import Subscription
from subscriptions.tests.factories import PlanFactory

ZIPCODES = ("10001", "90210")
AGENCIES = 4


class DistributionMachine(RuleBasedStateMachine):
    """Balance is checked per ZIP code over windows in which the eligible set stays the
    same: a window starts afresh whenever the set changes (subscribe, unsubscribe, a cap
    reached) or a re-offer moved the rotation for one lead's sake (reject, expire)."""

    @initialize()
    def start(self):
        self.atomic = transaction.atomic()
        self.atomic.__enter__()
        self.now = timezone.now()
        self.portal = PortalFactory()
        self.agencies = [AgencyFactory() for _ in range(AGENCIES)]
        self.plans = {False: PlanFactory(monthly_lead_cap=None), True: PlanFactory(monthly_lead_cap=2)}
        self.windows: dict[str, tuple[frozenset | None, Counter]] = {}
        self.fresh_windows()

    def teardown(self):
        if hasattr(self, "atomic"):
            transaction.set_rollback(True)
            self.atomic.__exit__(None, None, None)

    def fresh_windows(self, *zipcodes):
        for zipcode in zipcodes or ZIPCODES:
            self.windows[zipcode] = (None, Counter())

    def tick(self, seconds: int = 1):
        self.now += timedelta(seconds=seconds)

    def live_subscription(self, agency) -> Subscription | None:
        return Subscription.objects.live().filter(agency=agency).first()

    def eligible_for(self, lead) -> set[int]:
        """Recomputed from the rules, independently of the engine."""
        eligible = set()
        for agency in self.agencies:
            subscription = self.live_subscription(agency)
            if subscription is None or not subscription.territories.filter(zipcode=lead.zipcode).exists():
                continue
            cap = subscription.plan.monthly_lead_cap
            received = (
                Offer.objects.counting_towards_cap()
                .filter(subscription=subscription, offered_at__gte=subscription.current_period_start)
                .count()
            )
            if (cap is None or received < cap) and not Offer.objects.filter(lead=lead, agency=agency).exists():
                eligible.add(agency.id)
        return eligible

    @rule(
        agency=st.integers(0, AGENCIES - 1),
        zipcodes=st.sets(st.sampled_from(ZIPCODES), min_size=1),
        capped=st.booleans(),
    )
    def subscribe(self, agency, zipcodes, capped):
        if self.live_subscription(self.agencies[agency]) is None:
            # Run the after-commit work (cache invalidation, retries) as a commit would.
            with TestCase.captureOnCommitCallbacks(execute=True):
                subscription_services.subscribe(
                    agency=self.agencies[agency],
                    plan_id=self.plans[capped].pk,
                    zipcodes=sorted(zipcodes),
                    now=self.now,
                )
        self.tick()

    @rule(agency=st.integers(0, AGENCIES - 1))
    def unsubscribe(self, agency):
        if self.live_subscription(self.agencies[agency]) is not None:
            subscription_services.cancel_subscription(agency=self.agencies[agency], immediate=True, now=self.now)
        self.tick()

    @rule(zipcode=st.sampled_from(ZIPCODES))
    def ingest(self, zipcode):
        lead = LeadFactory(portal=self.portal, zipcode=zipcode, received_at=self.now)
        eligible = frozenset(self.eligible_for(lead))

        distribute_lead(lead_id=lead.pk, now=self.now)

        offer = Offer.objects.filter(lead=lead).first()
        assert (offer is None) == (not eligible)
        if offer is not None:
            assert offer.agency_id in eligible
            window_set, counts = self.windows[zipcode]
            if window_set != eligible:
                window_set, counts = eligible, Counter()
            counts[offer.agency_id] += 1
            self.windows[zipcode] = (window_set, counts)
        self.tick()

    def _live_offer_of(self, agency):
        return Offer.objects.live().filter(agency=self.agencies[agency], expires_at__gt=self.now).first()

    @rule(agency=st.integers(0, AGENCIES - 1))
    def accept(self, agency):
        offer = self._live_offer_of(agency)
        if offer:
            distribution.accept_offer(agency=self.agencies[agency], lead_id=offer.lead_id, now=self.now)
        self.tick()

    @rule(agency=st.integers(0, AGENCIES - 1))
    def reject(self, agency):
        offer = self._live_offer_of(agency)
        if offer:
            eligible = self.eligible_for(offer.lead) - {offer.agency_id}
            distribution.reject_offer(
                agency=self.agencies[agency], lead_id=offer.lead_id, reason=RejectReason.OTHER, note="", now=self.now
            )
            new = Offer.objects.live().filter(lead_id=offer.lead_id).first()
            assert (new is None) == (not eligible)
            assert new is None or new.agency_id in eligible
            self.fresh_windows(offer.lead.zipcode)
        self.tick()

    @rule()
    def expire(self):
        self.tick(31 * 60)
        if distribution.expire_offers(now=self.now).expired:
            self.fresh_windows()

    @invariant()
    def at_most_one_live_offer_per_lead(self):
        per_lead = Counter(Offer.objects.filter(status=OfferStatus.OFFERED).values_list("lead_id", flat=True))
        assert all(count == 1 for count in per_lead.values())

    @invariant()
    def rotation_balanced_within_one(self):
        for window_set, counts in self.windows.values():
            if window_set:
                per_agency = [counts[agency_id] for agency_id in window_set]
                assert max(per_agency) - min(per_agency) <= 1, (window_set, counts)


@pytest.mark.django_db
def test_distribution_invariants_hold_for_random_histories():
    run_state_machine_as_test(
        DistributionMachine,
        settings=settings(
            max_examples=20,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        ),
    )
