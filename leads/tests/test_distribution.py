"""The rotation engine and the offer lifecycle, through the services."""

from collections import Counter
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agencies.models import Agency, AgencyStatus, Notification, NotificationKind
from audit.models import AuditLog
from leads import distribution
from leads.models import Lead, LeadStatus, Offer, OfferStatus, RejectReason, RotationCursor, SkipReason
from leads.tests.factories import LeadFactory, distribute_lead, subscribed_agency
from subscriptions import services as subscription_services

pytestmark = pytest.mark.django_db


def distribute(*leads):
    for lead in leads:
        distribute_lead(lead_id=lead.pk, now=timezone.now())


def offers_per_agency(zipcode="10001") -> Counter:
    return Counter(Offer.objects.filter(lead__zipcode=zipcode).values_list("agency_id", flat=True))


def test_leads_rotate_through_the_agencies_of_the_zipcode_in_a_stable_order():
    agencies = [subscribed_agency("10001") for _ in range(3)]
    subscribed_agency("90210")  # another territory takes no part
    leads = LeadFactory.create_batch(7)

    distribute(*leads)

    order = [Offer.objects.get(lead=lead).agency_id for lead in leads]
    ids = [agency.id for agency in agencies]
    assert order == [ids[0], ids[1], ids[2], ids[0], ids[1], ids[2], ids[0]]
    assert all(Lead.objects.get(pk=lead.pk).status == LeadStatus.OFFERED for lead in leads)


def test_every_offer_records_its_decision_trace():
    first, paused = subscribed_agency("10001"), subscribed_agency("10001", accepting_leads=False)
    lead = LeadFactory()

    distribute(lead)

    decision = Offer.objects.get(lead=lead).decision
    assert decision["eligible"] == [first.id]
    assert decision["position_before"] is None
    assert decision["position_after"] == first.id
    assert decision["skipped"] == {str(paused.id): SkipReason.PAUSED}


def test_capped_agency_is_skipped_and_the_trace_says_so():
    capped = subscribed_agency("10001", cap=1)
    other = subscribed_agency("10001")
    leads = LeadFactory.create_batch(3)

    distribute(*leads)

    assert offers_per_agency() == {capped.id: 1, other.id: 2}
    last = Offer.objects.get(lead=leads[2]).decision
    assert last["skipped"] == {str(capped.id): SkipReason.CAP_REACHED}


def test_rejected_offers_do_not_count_towards_the_cap():
    capped = subscribed_agency("10001", cap=1)
    first = LeadFactory()
    distribute(first)
    distribution.reject_offer(
        agency=capped, lead_id=first.pk, reason=RejectReason.NOT_INTERESTED, note="", now=timezone.now()
    )
    second = LeadFactory()

    distribute(second)

    assert Offer.objects.get(lead=second).agency == capped


def test_suspended_and_pending_agencies_are_skipped():
    active = subscribed_agency("10001")
    suspended = subscribed_agency("10001")
    pending = subscribed_agency("10001")
    Agency.objects.filter(pk=suspended.pk).update(status=AgencyStatus.SUSPENDED)
    Agency.objects.filter(pk=pending.pk).update(status=AgencyStatus.PENDING)
    lead = LeadFactory()

    distribute(lead)

    offer = Offer.objects.get(lead=lead)
    assert offer.agency == active
    assert offer.decision["skipped"] == {str(suspended.id): "suspended", str(pending.id): "not_active"}


def test_no_eligible_agency_leaves_the_lead_unassigned():
    lead = LeadFactory()

    distribute(lead)

    assert Lead.objects.get(pk=lead.pk).status == LeadStatus.UNASSIGNED
    assert not Offer.objects.exists()


def test_distribution_is_idempotent_for_an_offered_lead():
    subscribed_agency("10001")
    subscribed_agency("10001")
    lead = LeadFactory()

    distribute(lead, lead, lead)

    assert Offer.objects.filter(lead=lead).count() == 1


@pytest.mark.parametrize("status", [LeadStatus.DUPLICATE, LeadStatus.TEST])
def test_duplicate_and_test_leads_are_never_distributed(status):
    subscribed_agency("10001")
    lead = LeadFactory(status=status)

    distribute(lead)

    assert not Offer.objects.exists()


def test_offer_notifies_the_agency():
    agency = subscribed_agency("10001")
    lead = LeadFactory()

    distribute(lead)

    notification = Notification.objects.get(agency=agency)
    assert notification.kind == NotificationKind.LEAD_OFFERED
    assert notification.data["lead_id"] == str(lead.pk)


def test_rejected_lead_goes_to_the_next_agency_at_once():
    first, second = subscribed_agency("10001"), subscribed_agency("10001")
    lead = LeadFactory()
    distribute(lead)

    distribution.reject_offer(
        agency=first, lead_id=lead.pk, reason=RejectReason.OUTSIDE_SERVICE_AREA, note="too far", now=timezone.now()
    )

    offers = {offer.agency_id: offer for offer in Offer.objects.filter(lead=lead)}
    assert offers[first.id].status == OfferStatus.REJECTED
    assert offers[first.id].reject_reason == RejectReason.OUTSIDE_SERVICE_AREA
    assert offers[second.id].status == OfferStatus.OFFERED
    assert offers[second.id].decision["skipped"] == {str(first.id): SkipReason.ALREADY_OFFERED}


def test_lead_rejected_by_everyone_becomes_unassigned():
    only = subscribed_agency("10001")
    lead = LeadFactory()
    distribute(lead)

    distribution.reject_offer(agency=only, lead_id=lead.pk, reason=RejectReason.OTHER, note="", now=timezone.now())

    assert Lead.objects.get(pk=lead.pk).status == LeadStatus.UNASSIGNED


def test_expired_offer_moves_on_and_notifies():
    first, second = subscribed_agency("10001"), subscribed_agency("10001")
    lead = LeadFactory()
    distribute(lead)
    later = timezone.now() + timedelta(minutes=31)

    summary = distribution.expire_offers(now=later)

    assert summary.expired == 1
    assert Offer.objects.get(lead=lead, agency=first).status == OfferStatus.EXPIRED
    assert Offer.objects.get(lead=lead, agency=second).status == OfferStatus.OFFERED
    assert Notification.objects.filter(agency=first, kind=NotificationKind.OFFER_EXPIRED).exists()


def test_unassigned_leads_are_retried_when_an_agency_subscribes():
    lead = LeadFactory()
    distribute(lead)
    agency = subscribed_agency("10001")

    summary = distribution.redistribute_leads(now=timezone.now())

    assert summary.offered == 1
    assert Offer.objects.get(lead=lead).agency == agency


def test_redistribution_filters_by_zipcode():
    LeadFactory(zipcode="90210", status=LeadStatus.UNASSIGNED)
    kept = LeadFactory(status=LeadStatus.UNASSIGNED)
    subscribed_agency("10001", "90210")

    distribution.redistribute_leads(now=timezone.now(), zipcode="10001")

    assert list(Offer.objects.values_list("lead_id", flat=True)) == [kept.pk]


ZIPCODES = [f"100{n:02d}" for n in range(1, 13)]


def test_a_zipcode_is_in_the_same_part_in_every_process():
    # CRC-32 values, not Python's hash(), which is salted per process.
    assert [distribution.zip_part(zipcode, 3) for zipcode in ZIPCODES] == [1, 2, 1, 1, 2, 1, 2, 0, 1, 0, 2, 1]
    assert {distribution.zip_part(zipcode, 1) for zipcode in ZIPCODES} == {0}


def test_redistribution_by_parts_offers_each_lead_once_in_rotation():
    agencies = [subscribed_agency(*ZIPCODES) for _ in range(2)]
    leads = [LeadFactory(zipcode=zipcode, status=LeadStatus.UNASSIGNED) for zipcode in ZIPCODES for _ in range(3)]

    first = distribution.redistribute_leads(now=timezone.now(), partition=(0, 2))
    second = distribution.redistribute_leads(now=timezone.now(), partition=(1, 2))

    assert first.offered == sum(distribution.zip_part(lead.zipcode, 2) == 0 for lead in leads) > 0
    assert first.offered + second.offered == len(leads)
    assert sorted(Offer.objects.values_list("lead_id", flat=True)) == sorted(lead.pk for lead in leads)
    for zipcode in ZIPCODES:  # three leads over two agencies: two and one
        assert sorted(offers_per_agency(zipcode).values()) == [1, 2], zipcode
    assert {agency.pk for agency in agencies} == set(Offer.objects.values_list("agency_id", flat=True))


def test_accept_is_idempotent_and_other_states_are_409():
    first, second = subscribed_agency("10001"), subscribed_agency("10001")
    lead = LeadFactory()
    distribute(lead)
    now = timezone.now()

    distribution.accept_offer(agency=first, lead_id=lead.pk, now=now)
    distribution.accept_offer(agency=first, lead_id=lead.pk, now=now)

    assert Lead.objects.get(pk=lead.pk).status == LeadStatus.ACCEPTED
    with pytest.raises(distribution.NotFound):
        distribution.accept_offer(agency=second, lead_id=lead.pk, now=now)
    with pytest.raises(distribution.OfferNotOpen):
        distribution.reject_offer(agency=first, lead_id=lead.pk, reason=RejectReason.OTHER, note="", now=now)


def test_accepting_after_the_deadline_is_409():
    agency = subscribed_agency("10001")
    lead = LeadFactory()
    distribute(lead)

    with pytest.raises(distribution.OfferNotOpen):
        distribution.accept_offer(agency=agency, lead_id=lead.pk, now=timezone.now() + timedelta(minutes=31))


def test_reminder_is_sent_once_before_expiry(settings):
    agency = subscribed_agency("10001")
    lead = LeadFactory()
    distribute(lead)
    almost = timezone.now() + timedelta(minutes=26)

    assert distribution.remind_expiring_offers(now=almost) == 1
    assert distribution.remind_expiring_offers(now=almost) == 0
    assert Notification.objects.filter(agency=agency, kind=NotificationKind.OFFER_EXPIRING).count() == 1


def test_manual_distribution_next_in_rotation_withdraws_the_live_offer(staff_user):
    first, second = subscribed_agency("10001"), subscribed_agency("10001")
    lead = LeadFactory()
    distribute(lead)

    distribution.assign_lead(lead_id=lead.pk, actor=staff_user, now=timezone.now(), ip="203.0.113.1")

    assert Offer.objects.get(lead=lead, agency=first).status == OfferStatus.WITHDRAWN
    assert Offer.objects.get(lead=lead, agency=second).status == OfferStatus.OFFERED
    assert Notification.objects.filter(agency=first, kind=NotificationKind.LEAD_REASSIGNED).exists()
    assert AuditLog.objects.get(action="lead.distributed_manually").ip == "203.0.113.1"


def test_manual_distribution_to_an_agency_that_does_not_cover_the_zipcode_needs_force(staff_user):
    outsider = subscribed_agency("90210")
    lead = LeadFactory()

    with pytest.raises(ValidationError):
        distribution.assign_lead(lead_id=lead.pk, actor=staff_user, agency_id=outsider.pk, now=timezone.now())
    distribution.assign_lead(lead_id=lead.pk, actor=staff_user, agency_id=outsider.pk, force=True, now=timezone.now())

    offer = Offer.objects.get(lead=lead)
    assert offer.agency == outsider
    assert offer.assigned_by == staff_user
    assert offer.decision["mode"] == "forced"
    assert AuditLog.objects.filter(action="lead.force_assigned", object_id=str(lead.pk)).exists()


def test_manual_distribution_does_not_move_the_rotation(staff_user):
    first, second = subscribed_agency("10001"), subscribed_agency("10001")
    manual = LeadFactory()
    distribution.assign_lead(lead_id=manual.pk, actor=staff_user, agency_id=second.pk, now=timezone.now())
    lead = LeadFactory()

    distribute(lead)

    assert Offer.objects.get(lead=lead).agency == first


def test_accepted_lead_cannot_be_distributed_again(staff_user):
    agency = subscribed_agency("10001")
    lead = LeadFactory()
    distribute(lead)
    distribution.accept_offer(agency=agency, lead_id=lead.pk, now=timezone.now())

    with pytest.raises(distribution.LeadNotDistributable):
        distribution.assign_lead(lead_id=lead.pk, actor=staff_user, now=timezone.now())


def test_agency_leaving_the_territory_leaves_the_rotation_without_disturbing_the_others():
    a, b, c = (subscribed_agency("10001") for _ in range(3))
    distribute(*LeadFactory.create_batch(2))  # a, b
    subscription_services.cancel_subscription(agency=b, immediate=True, now=timezone.now())
    leads = LeadFactory.create_batch(4)

    distribute(*leads)

    assert [Offer.objects.get(lead=lead).agency_id for lead in leads] == [c.id, a.id, c.id, a.id]


def test_first_lead_of_a_new_zipcode_creates_its_cursor():
    agency = subscribed_agency("10001")

    distribute(LeadFactory())

    assert RotationCursor.objects.get(zipcode="10001").last_agency_id == agency.id


@pytest.fixture
def redistributions(monkeypatch):
    """The ZIP codes whose unassigned leads were queued for another try (after commit)."""
    queued = []
    monkeypatch.setattr(
        "leads.tasks.redistribute_leads.apply_async", lambda kwargs, **_options: queued.append(kwargs["zipcodes"])
    )
    return queued


def test_subscribing_retries_the_unassigned_leads_of_its_zipcodes(redistributions, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        subscribed_agency("10001", "90210")

    assert redistributions == [["10001", "90210"]]


def test_resuming_leads_retries_the_agencys_zipcodes(redistributions, django_capture_on_commit_callbacks):
    from agencies.services import update_agency_profile

    agency = subscribed_agency("10001", accepting_leads=False)
    redistributions.clear()

    with django_capture_on_commit_callbacks(execute=True):
        update_agency_profile(agency=agency, changes={"accepting_leads": True})

    assert redistributions == [["10001"]]


def test_renewal_resets_the_cap_and_retries_the_zipcodes(redistributions, django_capture_on_commit_callbacks):
    start = timezone.now() - timedelta(days=40)
    capped = subscribed_agency("10001", cap=1, now=start)
    LeadFactory(received_at=start)
    distribute_lead(lead_id=Lead.objects.get().pk, now=start)
    waiting = LeadFactory(received_at=start)
    distribute_lead(lead_id=waiting.pk, now=start)
    assert Lead.objects.get(pk=waiting.pk).status == LeadStatus.UNASSIGNED

    with django_capture_on_commit_callbacks(execute=True):
        subscription_services.renew_subscriptions(now=timezone.now())
    distribution.redistribute_leads(now=timezone.now())

    assert ["10001"] in redistributions
    assert Offer.objects.get(lead=waiting).agency == capped
    assert Notification.objects.filter(agency=capped, kind=NotificationKind.SUBSCRIPTION_RENEWED).exists()


def test_a_zipcode_nobody_covers_is_cached_and_forgotten_when_coverage_grows(
    django_assert_max_num_queries, django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.setattr("leads.tasks.redistribute_leads.apply_async", lambda kwargs, **_options: None)
    distribute(LeadFactory())  # caches "nobody covers 10001"
    second = LeadFactory()

    # savepoint, lock the lead, mark it unassigned, release: no cursor, no territories
    with django_assert_max_num_queries(4):
        distribute(second)
    assert not RotationCursor.objects.filter(zipcode="10001").exists()
    with django_capture_on_commit_callbacks(execute=True):
        agency = subscribed_agency("10001")
    third = LeadFactory()
    distribute(third)

    assert Offer.objects.get(lead=third).agency == agency


def test_an_offer_queues_a_push_run_only_after_commit(monkeypatch, django_capture_on_commit_callbacks):
    agency = subscribed_agency("10001")
    lead = LeadFactory()
    pushed = []
    monkeypatch.setattr(
        "agencies.tasks.push_notifications.apply_async", lambda kwargs, **_options: pushed.append(kwargs)
    )

    with django_capture_on_commit_callbacks(execute=True):
        distribute(lead)
        assert pushed == []

    assert Notification.objects.filter(agency=agency, kind=NotificationKind.LEAD_OFFERED).exists()
    assert pushed == [{"requested": True}]  # a push run, which takes every notification owed when it starts


def test_a_broker_outage_never_loses_or_rolls_back_the_offer(monkeypatch, django_capture_on_commit_callbacks):
    subscribed_agency("10001")
    lead = LeadFactory()

    def broker_down(kwargs, **_options):
        raise ConnectionError("redis is down")

    monkeypatch.setattr("agencies.tasks.push_notifications.apply_async", broker_down)

    with django_capture_on_commit_callbacks(execute=True):
        distribute(lead)

    assert Offer.objects.filter(lead=lead, status=OfferStatus.OFFERED).exists()
    assert Notification.objects.get().push_status == "pending"  # the sweeper pushes it later


def test_force_distributing_a_duplicate_makes_it_a_lead_of_its_own(staff_user):
    agency = subscribed_agency("10001")
    original = LeadFactory(status=LeadStatus.ACCEPTED)
    duplicate = LeadFactory(status=LeadStatus.DUPLICATE, duplicate_of=original)

    distribution.assign_lead(
        lead_id=duplicate.pk, actor=staff_user, agency_id=agency.pk, force=True, now=timezone.now()
    )

    duplicate.refresh_from_db()
    assert duplicate.status == LeadStatus.OFFERED
    assert duplicate.duplicate_of is None
    entry = AuditLog.objects.get(action="lead.force_assigned")
    assert entry.changes["duplicate_of"] == {"before": original.pk, "after": None}


def test_retrying_leaves_a_still_unassigned_lead_and_uncovered_zipcodes_alone():
    lonely = LeadFactory(zipcode="90210", status=LeadStatus.UNASSIGNED)
    since = Lead.objects.get(pk=lonely.pk).status_changed_at
    covered = LeadFactory(status=LeadStatus.UNASSIGNED)
    agency = subscribed_agency("10001", accepting_leads=False)

    distribution.redistribute_leads(now=timezone.now() + timedelta(minutes=1))

    assert Lead.objects.get(pk=lonely.pk).status_changed_at == since
    assert not RotationCursor.objects.filter(zipcode="90210").exists()
    assert Lead.objects.get(pk=covered.pk).status == LeadStatus.UNASSIGNED
    assert not Offer.objects.filter(agency=agency).exists()


def test_one_batch_over_several_zipcodes_keeps_each_rotation_and_a_shared_cap_exact():
    capped = subscribed_agency("10001", "10002", cap=3)
    others = {zipcode: subscribed_agency(zipcode) for zipcode in ("10001", "10002")}
    leads = [LeadFactory(zipcode=("10001", "10002")[n % 2]) for n in range(8)]

    with transaction.atomic():
        locked = list(Lead.objects.select_for_update().filter(pk__in=[lead.pk for lead in leads]).order_by("id"))
        outcome = distribution.distribute(leads=locked, now=timezone.now())

    assert len(outcome.offers) == 8
    per_zipcode = {
        zipcode: [offer.agency_id for offer in outcome.offers if offer.lead.zipcode == zipcode]
        for zipcode in ("10001", "10002")
    }
    # Each ZIP code alternates between its two agencies until the shared cap of 3 is used up.
    assert per_zipcode["10001"] == [capped.id, others["10001"].id, capped.id, others["10001"].id]
    assert per_zipcode["10002"] == [capped.id, others["10002"].id, others["10002"].id, others["10002"].id]
    assert Offer.objects.filter(agency=capped).count() == 3
    assert dict(RotationCursor.objects.values_list("zipcode", "offers_made")) == {"10001": 4, "10002": 4}


def test_the_minute_run_queues_one_run_per_part_of_the_zipcodes(monkeypatch, settings):
    from leads import tasks

    settings.REDISTRIBUTION_PARTITIONS = 3
    queued = []
    monkeypatch.setattr(
        "leads.tasks.redistribute_leads.apply_async", lambda args=None, kwargs=None, **_options: queued.append(kwargs)
    )

    assert tasks.redistribute_leads() == {"partitions": 3}
    assert queued == [{"partition": [0, 3]}, {"partition": [1, 3]}, {"partition": [2, 3]}]
    tasks.redistribute_leads(zipcodes=["10001"])  # a run for some ZIP codes is not split
    assert len(queued) == 3


def test_a_run_of_one_part_offers_only_its_zipcodes_leads():
    from leads import tasks

    subscribed_agency(*ZIPCODES)
    leads = [LeadFactory(zipcode=zipcode, status=LeadStatus.UNASSIGNED) for zipcode in ZIPCODES]
    part = {lead.pk for lead in leads if distribution.zip_part(lead.zipcode, 2) == 1}

    assert tasks.redistribute_leads(partition=[1, 2]) == {"offered": len(part), "expired": 0}
    assert set(Offer.objects.values_list("lead_id", flat=True)) == part
    assert 0 < len(part) < len(leads)


def test_a_part_expires_only_the_overdue_offers_of_its_zipcodes():
    for _ in range(2):
        subscribed_agency(*ZIPCODES)
    leads = [LeadFactory(zipcode=zipcode) for zipcode in ZIPCODES]
    distribute(*leads)
    later = timezone.now() + distribution.offer_timeout() + timedelta(minutes=1)

    summary = distribution.redistribute_leads(now=later, partition=(0, 2))

    part = {lead.pk for lead in leads if distribution.zip_part(lead.zipcode, 2) == 0}
    assert set(Offer.objects.filter(status=OfferStatus.EXPIRED).values_list("lead_id", flat=True)) == part
    assert summary.expired == summary.offered == len(part)


def test_a_batch_takes_as_many_queries_for_many_leads_and_zipcodes_as_for_few():
    for _ in range(2):
        subscribed_agency(*ZIPCODES[:6])

    def queries_for(zipcodes: list[str], per_zipcode: int, **fields) -> int:
        for zipcode in zipcodes:
            LeadFactory.create_batch(per_zipcode, zipcode=zipcode, **fields)
        LeadFactory.create_batch(per_zipcode, zipcode="90210", **fields)  # nobody covers it: new ones become unassigned
        with CaptureQueriesContext(connection) as queries:
            if fields:
                distribution.retry_unassigned(now=timezone.now())
            else:
                distribution.distribute_new_leads()
        return len(queries)

    queries_for(ZIPCODES[:6], 1)  # the first run creates the cursors and caches the ZIP codes' coverage
    # A field a batch leaves unloaded and then reads would cost a query per lead or ZIP code.
    assert queries_for(ZIPCODES[:1], 1) == queries_for(ZIPCODES[:6], 5)
    unassigned = {"status": LeadStatus.UNASSIGNED}
    assert queries_for(ZIPCODES[:1], 1, **unassigned) == queries_for(ZIPCODES[:6], 5, **unassigned)
    assert not Lead.objects.exclude(zipcode="90210").exclude(status=LeadStatus.OFFERED).exists()
    assert Lead.objects.filter(zipcode="90210", status=LeadStatus.UNASSIGNED).count() == 13
