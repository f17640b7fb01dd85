"""The distribution engine: fair rotation of leads among the agencies covering a ZIP code.

How a lead finds its agency (all inside one transaction):

1. The lead rows are locked (the caller decides: wait for one lead, or skip locked ones
   when sweeping many).
2. The ZIP code's RotationCursor row is created if needed and locked. This serialises
   distribution within the ZIP code, never across ZIP codes.
3. The territories covering the ZIP code are read together with their subscriptions and
   agencies, locked FOR NO KEY UPDATE in agency order. A concurrent unsubscribe, territory
   removal, suspension or pause therefore either commits before (and is seen) or waits
   until this offer is committed; locking in one order keeps two ZIP codes that share
   agencies from deadlocking. The cap counts are read under the same locks, so they are exact.
4. The eligible agencies, in a stable order (agency id), are: active, accepting leads,
   below their plan's cap for the current period, and never offered this lead before.
   The lead goes to the first eligible agency after the one that got the ZIP code's last
   offer (wrapping around). While the eligible set stays the same, per-agency counts in a
   ZIP code never differ by more than one; an agency joining or leaving is simply in or
   out of the ordered list, so the others keep their order.
5. The offer records its decision trace; the lead becomes `offered` (or `unassigned` when
   nobody is eligible); the cursor moves; the agency's notification is pushed after commit.

Lock order everywhere: lead rows, then the cursor, then territory/subscription/agency rows.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, F, Q

from agencies.models import Agency, AgencyStatus, NotificationKind
from agencies.notifications import notify, notify_many
from audit.services import record_action
from leadmarket import metrics
from leadmarket.bulk import copy_create
from leadmarket.celery import enqueue_on_commit
from leadmarket.errors import Conflict, NotFound
from subscriptions.models import Territory

from .models import Lead, LeadStatus, Offer, OfferStatus, RejectReason, RotationCursor, SkipReason


@dataclass
class Candidate:
    """An agency of the territory, as distribution sees it at this moment."""

    agency_id: int
    subscription_id: int
    agency_status: str
    accepting_leads: bool
    cap: int | None
    received: int = 0  # offers counting towards the cap in the current period

    def skip_reason(self) -> SkipReason | None:
        if self.agency_status == AgencyStatus.SUSPENDED:
            return SkipReason.SUSPENDED
        if self.agency_status != AgencyStatus.ACTIVE:
            return SkipReason.NOT_ACTIVE
        if not self.accepting_leads:
            return SkipReason.PAUSED
        if self.cap is not None and self.received >= self.cap:
            return SkipReason.CAP_REACHED
        return None


@dataclass
class Outcome:
    offers: list[Offer] = field(default_factory=list)
    unassigned: list[Lead] = field(default_factory=list)


def offer_timeout() -> timedelta:
    return timedelta(minutes=settings.OFFER_TIMEOUT_MINUTES)


def lock_cursor(zipcode: str) -> RotationCursor:
    """The ZIP code's rotation cursor, created on first use, locked until commit.

    Leads of a ZIP code never seen before may arrive together: the primary key lets
    exactly one insert win and the others wait for its lock.
    """
    cursor, _ = RotationCursor.objects.select_for_update().get_or_create(zipcode=zipcode)
    return cursor


def lock_candidates(zipcode: str, *, now: datetime) -> list[Candidate]:
    """The agencies whose live subscriptions cover `zipcode` now, locked, with cap counts."""
    territories = (
        Territory.objects.covering(zipcode, now=now)
        .select_related("subscription__plan", "subscription__agency")
        .select_for_update(no_key=True, of=("self", "subscription", "subscription__agency"))
        .order_by("subscription__agency_id", "subscription_id")
    )
    candidates = {}
    periods = {}
    for territory in territories:
        subscription = territory.subscription
        candidates[subscription.id] = Candidate(
            agency_id=subscription.agency_id,
            subscription_id=subscription.id,
            agency_status=subscription.agency.status,
            accepting_leads=subscription.agency.accepting_leads,
            cap=subscription.plan.monthly_lead_cap,
        )
        periods[subscription.id] = subscription.current_period_start
    capped = [sid for sid, candidate in candidates.items() if candidate.cap is not None]
    if capped:
        counts = (
            Offer.objects.counting_towards_cap()
            .filter(subscription_id__in=capped, offered_at__gte=F("subscription__current_period_start"))
            .values("subscription_id")
            .annotate(received=Count("id"))
        )
        for row in counts:
            candidates[row["subscription_id"]].received = row["received"]
    return list(candidates.values())


def next_in_rotation(eligible_agency_ids: list[int], last_agency_id: int | None) -> int:
    """The first agency after `last_agency_id` in id order, wrapping around."""
    for agency_id in eligible_agency_ids:
        if last_agency_id is None or agency_id > last_agency_id:
            return agency_id
    return eligible_agency_ids[0]


def distribute_in_zipcode(*, zipcode: str, leads: list[Lead], now: datetime) -> Outcome:
    """Offers each of `leads` (all in `zipcode`, locked by the caller, in arrival order) to
    the next eligible agency of the rotation; leads nobody can take become `unassigned`.

    Runs inside the caller's transaction.
    """
    cursor = lock_cursor(zipcode)
    candidates = lock_candidates(zipcode, now=now)
    previously_offered = defaultdict(set)
    for lead_id, agency_id in Offer.objects.filter(lead__in=leads).values_list("lead_id", "agency_id"):
        previously_offered[lead_id].add(agency_id)

    outcome = Outcome()
    for lead in leads:
        skipped, eligible = {}, []
        for candidate in candidates:
            reason = candidate.skip_reason()
            if reason is None and candidate.agency_id in previously_offered[lead.id]:
                reason = SkipReason.ALREADY_OFFERED
            if reason is None:
                eligible.append(candidate)
            else:
                skipped[str(candidate.agency_id)] = reason.value
        if not eligible:
            outcome.unassigned.append(lead)
            continue
        chosen_id = next_in_rotation([candidate.agency_id for candidate in eligible], cursor.last_agency_id)
        chosen = next(candidate for candidate in eligible if candidate.agency_id == chosen_id)
        outcome.offers.append(
            Offer(
                lead=lead,
                agency_id=chosen.agency_id,
                subscription_id=chosen.subscription_id,
                offered_at=now,
                expires_at=now + offer_timeout(),
                decision={
                    "mode": "rotation",
                    "zipcode": zipcode,
                    "eligible": [candidate.agency_id for candidate in eligible],
                    "position_before": cursor.last_agency_id,
                    "position_after": chosen.agency_id,
                    "skipped": skipped,
                },
            )
        )
        cursor.last_agency_id = chosen.agency_id
        chosen.received += 1
        previously_offered[lead.id].add(chosen.agency_id)

    if outcome.offers:
        cursor.offers_made += len(outcome.offers)
        cursor.updated_at = now
        cursor.save(update_fields=["last_agency_id", "offers_made", "updated_at"])
    record_outcome(outcome, now=now)
    return outcome


def record_outcome(outcome: Outcome, *, now: datetime) -> None:
    """Stores the offers, moves the leads' status, and notifies the agencies after commit."""
    copy_create(outcome.offers)
    for offer in outcome.offers:
        offer.lead.status, offer.lead.status_changed_at = LeadStatus.OFFERED, now
    offered_ids = [offer.lead_id for offer in outcome.offers]
    if offered_ids:
        Lead.objects.filter(id__in=offered_ids).update(status=LeadStatus.OFFERED, status_changed_at=now)
    for lead in outcome.unassigned:
        lead.status, lead.status_changed_at = LeadStatus.UNASSIGNED, now
    if outcome.unassigned:
        Lead.objects.filter(id__in=[lead.id for lead in outcome.unassigned]).update(
            status=LeadStatus.UNASSIGNED, status_changed_at=now
        )
    notify_many(
        [
            {
                "agency_id": offer.agency_id,
                "kind": NotificationKind.LEAD_OFFERED,
                "title": "New lead waiting for you",
                "body": f"A {offer.lead.lead_type or 'new'} lead in {offer.lead.zipcode} "
                f"({offer.lead.city or offer.lead.state}). Accept it within {settings.OFFER_TIMEOUT_MINUTES} minutes.",
                "data": {"lead_id": offer.lead_id, "offer_id": offer.pk},
            }
            for offer in outcome.offers
        ],
        now=now,
    )


# --- Use cases ---------------------------------------------------------------------------

DISTRIBUTABLE = (LeadStatus.NEW, LeadStatus.UNASSIGNED)
BATCH_SIZE = 500
BATCH_LEAD_FIELDS = ("id", "zipcode", "received_at", "status", "status_changed_at", "lead_type", "city", "state")


class OfferNotOpen(Conflict):
    default_message = "This lead is no longer offered to you (accepted, rejected, expired or given to another agency)."


class LeadNotDistributable(Conflict):
    default_message = "This lead cannot be distributed in its current state."


@dataclass
class RedistributionSummary:
    expired: int = 0
    offered: int = 0
    unassigned: int = 0
    examined: int = 0


def _by_zipcode(leads: list[Lead]) -> dict[str, list[Lead]]:
    groups: dict[str, list[Lead]] = defaultdict(list)
    for lead in sorted(leads, key=lambda lead: (lead.received_at, lead.id)):
        groups[lead.zipcode].append(lead)
    return groups


@transaction.atomic
def distribute_lead(*, lead_id: int, now: datetime) -> Lead | None:
    """Offers a `new` or `unassigned` lead to the next eligible agency of its ZIP code.

    Idempotent: a lead in any other state (already offered, accepted, duplicate, test) or
    an unknown id is left alone, so a hand-off delivered twice makes one offer.
    """
    lead = Lead.objects.select_for_update().filter(pk=lead_id).first()
    if lead is None or lead.status not in DISTRIBUTABLE:
        return lead
    distribute_in_zipcode(zipcode=lead.zipcode, leads=[lead], now=now)
    return lead


def _expire_batch(*, now: datetime, filters: Q, batch_size: int) -> tuple[int, Outcome]:
    """One transaction: expire overdue offers of a batch of leads and offer them on."""
    with transaction.atomic():
        leads = list(
            Lead.objects.filter(
                filters, status=LeadStatus.OFFERED, offers__status=OfferStatus.OFFERED, offers__expires_at__lte=now
            )
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("zipcode", "id")[:batch_size]
        )
        if not leads:
            return 0, Outcome()
        overdue = list(Offer.objects.live().filter(lead__in=leads, expires_at__lte=now).select_related("lead"))
        Offer.objects.filter(pk__in=[offer.pk for offer in overdue]).update(
            status=OfferStatus.EXPIRED, responded_at=now
        )
        notify_many(
            [
                {
                    "agency_id": offer.agency_id,
                    "kind": NotificationKind.OFFER_EXPIRED,
                    "title": "Offer expired",
                    "body": f"The lead in {offer.lead.zipcode} went to the next agency.",
                    "data": {"lead_id": offer.lead_id},
                }
                for offer in overdue
            ],
            now=now,
        )
        outcome = Outcome()
        for zipcode, group in _by_zipcode([offer.lead for offer in overdue]).items():
            result = distribute_in_zipcode(zipcode=zipcode, leads=group, now=now)
            outcome.offers += result.offers
            outcome.unassigned += result.unassigned
        return len(overdue), outcome


def expire_offers(
    *, now: datetime, filters: Q | None = None, limit: int | None = None, batch_size: int = BATCH_SIZE, progress=None
) -> RedistributionSummary:
    """Expires offers past their deadline and offers each lead to the next eligible agency
    at once (or makes it `unassigned`). Safe to run concurrently: batches skip leads
    another run holds."""
    summary = RedistributionSummary()
    while limit is None or summary.expired < limit:
        size = batch_size if limit is None else min(batch_size, limit - summary.expired)
        expired, outcome = _expire_batch(now=now, filters=filters or Q(), batch_size=size)
        if not expired:
            break
        summary.expired += expired
        summary.offered += len(outcome.offers)
        summary.unassigned += len(outcome.unassigned)
        if progress:
            progress(summary)
    return summary


def retry_unassigned(
    *, now: datetime, filters: Q | None = None, limit: int | None = None, batch_size: int = BATCH_SIZE, progress=None
) -> RedistributionSummary:
    """Offers unassigned leads again, a batch of one ZIP code's leads per transaction
    (one cursor lock and one eligibility read for many leads)."""
    summary = RedistributionSummary()
    after = ("", 0)
    while limit is None or summary.examined < limit:
        size = batch_size if limit is None else min(batch_size, limit - summary.examined)
        with transaction.atomic():
            leads = list(
                Lead.objects.filter(filters or Q(), status=LeadStatus.UNASSIGNED)
                # The redundant lower bound lets the scan start at the position in lead_unassigned_idx.
                .filter(Q(zipcode__gte=after[0]), Q(zipcode__gt=after[0]) | Q(zipcode=after[0], id__gt=after[1]))
                .select_for_update(skip_locked=True)
                # Only what distribution and the notification text read: loading (and decoding)
                # every column of every lead was a large share of a batch's time.
                .only(*BATCH_LEAD_FIELDS)
                .order_by("zipcode", "id")[:size]
            )
            if not leads:
                break
            after = (leads[-1].zipcode, leads[-1].id)
            for zipcode, group in _by_zipcode(leads).items():
                outcome = distribute_in_zipcode(zipcode=zipcode, leads=group, now=now)
                summary.offered += len(outcome.offers)
                summary.unassigned += len(outcome.unassigned)
        summary.examined += len(leads)
        if progress:
            progress(summary)
    return summary


def redistribute_leads(
    *,
    now: datetime,
    zipcode: str | None = None,
    portal_id: int | None = None,
    since: datetime | None = None,
    limit: int | None = None,
    progress=None,
) -> RedistributionSummary:
    """Re-offers leads whose offer expired and retries unassigned leads (optionally for one
    ZIP code, one portal, or leads received since a time). Idempotent and safe while
    webhooks arrive and while another copy runs."""
    filters = Q()
    if zipcode:
        filters &= Q(zipcode=zipcode)
    if portal_id:
        filters &= Q(portal_id=portal_id)
    if since:
        filters &= Q(received_at__gte=since)
    expired = expire_offers(now=now, filters=filters, limit=limit, progress=progress)
    retried = retry_unassigned(now=now, filters=filters, limit=limit, progress=progress)
    return RedistributionSummary(
        expired=expired.expired,
        examined=retried.examined,
        offered=expired.offered + retried.offered,
        unassigned=retried.unassigned + expired.unassigned,
    )


def count_redistributable(
    *, now: datetime, zipcode: str | None = None, portal_id: int | None = None, since: datetime | None = None
) -> dict[str, int]:
    """What `redistribute_leads` would look at (for a dry run)."""
    leads = Lead.objects.all()
    if zipcode:
        leads = leads.filter(zipcode=zipcode)
    if portal_id:
        leads = leads.filter(portal_id=portal_id)
    if since:
        leads = leads.filter(received_at__gte=since)
    return {
        "overdue_offers": leads.filter(
            status=LeadStatus.OFFERED, offers__status=OfferStatus.OFFERED, offers__expires_at__lte=now
        ).count(),
        "unassigned": leads.filter(status=LeadStatus.UNASSIGNED).count(),
    }


def _lock_offer_of(*, agency: Agency, lead_id: int) -> tuple[Lead, Offer]:
    """The lead (locked) and this agency's latest offer of it; NotFound when it has none."""
    lead = Lead.objects.select_for_update().filter(pk=lead_id).first()
    offer = (
        Offer.objects.filter(lead_id=lead_id, agency=agency).order_by("-offered_at", "-id").first() if lead else None
    )
    if offer is None:
        raise NotFound("Lead not found.")
    return lead, offer


@transaction.atomic
def accept_offer(*, agency: Agency, lead_id: int, now: datetime) -> Offer:
    """The agency takes the lead offered to it. Accepting again is harmless.

    Raises NotFound (never offered to this agency) or OfferNotOpen (409: rejected,
    expired, withdrawn or given to another agency).
    """
    lead, offer = _lock_offer_of(agency=agency, lead_id=lead_id)
    if offer.status == OfferStatus.ACCEPTED:
        return offer
    if offer.status != OfferStatus.OFFERED or offer.expires_at <= now:
        raise OfferNotOpen()
    offer.status, offer.responded_at = OfferStatus.ACCEPTED, now
    offer.save(update_fields=["status", "responded_at"])
    lead.status, lead.status_changed_at = LeadStatus.ACCEPTED, now
    lead.save(update_fields=["status", "status_changed_at"])
    seconds = (now - offer.offered_at).total_seconds()
    transaction.on_commit(lambda: metrics.time_to_accept.observe(seconds))
    transaction.on_commit(lambda: metrics.offers_resolved.labels("accepted").inc())
    offer.lead = lead
    return offer


@transaction.atomic
def reject_offer(*, agency: Agency, lead_id: int, reason: RejectReason, note: str, now: datetime) -> Offer:
    """The agency declines the lead, which goes at once to the next eligible agency.

    Raises NotFound (never offered to this agency) or OfferNotOpen (409).
    """
    lead, offer = _lock_offer_of(agency=agency, lead_id=lead_id)
    if offer.status != OfferStatus.OFFERED or offer.expires_at <= now:
        raise OfferNotOpen()
    offer.status, offer.responded_at = OfferStatus.REJECTED, now
    offer.reject_reason, offer.reject_note = reason, note
    offer.save(update_fields=["status", "responded_at", "reject_reason", "reject_note"])
    distribute_in_zipcode(zipcode=lead.zipcode, leads=[lead], now=now)
    transaction.on_commit(lambda: metrics.offers_resolved.labels("rejected").inc())
    return offer


def _withdraw_live_offer(lead: Lead, *, now: datetime, reason: str) -> Offer | None:
    live = Offer.objects.live().filter(lead=lead).first()
    if live is None:
        return None
    live.status, live.responded_at = OfferStatus.WITHDRAWN, now
    live.save(update_fields=["status", "responded_at"])
    notify_many(
        [
            {
                "agency_id": live.agency_id,
                "kind": NotificationKind.LEAD_REASSIGNED,
                "title": "Lead reassigned",
                "body": f"The lead in {lead.zipcode} is no longer yours to accept ({reason}).",
                "data": {"lead_id": lead.id},
            }
        ],
        now=now,
    )
    return live


@transaction.atomic
def assign_lead(
    *, lead_id: int, actor, agency_id: int | None = None, force: bool = False, now: datetime, ip: str | None = None
) -> Lead:
    """Staff distribute a lead by hand: to the next agency in rotation (`agency_id` None) or to
    one agency, which must be active and cover the lead's ZIP code unless `force` (audited).

    A live offer to another agency is withdrawn first. Raises NotFound, LeadNotDistributable
    (accepted; duplicate or test without force), or ValidationError on `agency_id`.
    """
    lead = Lead.objects.select_for_update().filter(pk=lead_id).first()
    if lead is None:
        raise NotFound("Lead not found.")
    if lead.status == LeadStatus.ACCEPTED or (lead.status in (LeadStatus.DUPLICATE, LeadStatus.TEST) and not force):
        raise LeadNotDistributable(
            f"A {lead.status} lead cannot be distributed"
            + ("." if lead.status == LeadStatus.ACCEPTED else "; use force to override.")
        )
    before = {"status": lead.status}
    withdrawn = _withdraw_live_offer(lead, now=now, reason="reassigned by staff")
    if agency_id is None:
        outcome = distribute_in_zipcode(zipcode=lead.zipcode, leads=[lead], now=now)
        chosen = outcome.offers[0].agency_id if outcome.offers else None
    else:
        chosen = _assign_to(lead, agency_id=agency_id, actor=actor, force=force, now=now)
    lead.refresh_from_db(fields=["status", "status_changed_at"])
    record_action(
        actor=actor,
        action="lead.force_assigned" if force and agency_id else "lead.distributed_manually",
        target=lead,
        before=before,
        after={"status": lead.status},
        metadata={
            "agency_id": chosen,
            "requested_agency_id": agency_id,
            "force": force,
            "withdrawn_offer_agency_id": withdrawn.agency_id if withdrawn else None,
        },
        ip=ip,
    )
    return lead


def _assign_to(lead: Lead, *, agency_id: int, actor, force: bool, now: datetime) -> int:
    agency = Agency.objects.filter(pk=agency_id).first()
    if agency is None:
        raise ValidationError({"agency_id": ["Unknown agency."]})
    lock_cursor(lead.zipcode)  # same lock order as the rotation, though the cursor does not move
    candidate = next((c for c in lock_candidates(lead.zipcode, now=now) if c.agency_id == agency_id), None)
    if not force:
        if agency.status != AgencyStatus.ACTIVE:
            raise ValidationError({"agency_id": ["The agency is not active."]})
        if candidate is None:
            raise ValidationError({"agency_id": ["The agency's subscription does not cover this ZIP code."]})
    if Offer.objects.filter(lead=lead, agency_id=agency_id).exists():
        raise LeadNotDistributable("This lead was already offered to that agency.")
    offer = Offer(
        lead=lead,
        agency_id=agency_id,
        subscription_id=candidate.subscription_id if candidate else None,
        offered_at=now,
        expires_at=now + offer_timeout(),
        assigned_by=actor,
        decision={
            "mode": "forced" if force else "manual",
            "zipcode": lead.zipcode,
            "covers_zipcode": bool(candidate),
            "skip_reason_ignored": (candidate.skip_reason() if candidate else None),
        },
    )
    record_outcome(Outcome(offers=[offer]), now=now)
    return agency_id


def remind_expiring_offers(*, now: datetime) -> int:
    """Warns agencies whose offer expires within OFFER_REMINDER_MINUTES; once per offer."""
    soon = now + timedelta(minutes=settings.OFFER_REMINDER_MINUTES)
    with transaction.atomic():
        offers = list(
            Offer.objects.live()
            .filter(expires_at__gt=now, expires_at__lte=soon, reminded_at__isnull=True)
            .select_related("lead")
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("expires_at", "id")[:1000]
        )
        for offer in offers:
            minutes = max(1, int((offer.expires_at - now).total_seconds() // 60))
            notify(
                agency_id=offer.agency_id,
                kind=NotificationKind.OFFER_EXPIRING,
                title="Offer about to expire",
                body=f"The lead in {offer.lead.zipcode} goes to another agency in {minutes} min.",
                data={"lead_id": offer.lead_id, "offer_id": offer.pk},
                now=now,
                dedupe_key=f"offer-expiring:{offer.pk}",
            )
        Offer.objects.filter(pk__in=[offer.pk for offer in offers]).update(reminded_at=now)
    return len(offers)


def retry_unassigned_in(zipcodes) -> None:
    """After the caller's transaction commits, unassigned leads of these ZIP codes get another
    chance: called where an agency may have become eligible (subscribed, added a ZIP code,
    changed plan, renewed with a fresh cap, resumed taking leads)."""
    from .tasks import redistribute_leads

    zipcodes = sorted(set(zipcodes))
    if zipcodes:
        enqueue_on_commit(redistribute_leads, zipcodes=zipcodes)
