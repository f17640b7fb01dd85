"""The distribution engine: fair rotation of leads among the agencies covering a ZIP code.

How leads find their agencies (a batch of leads, in any ZIP codes, inside one transaction):

1. The lead rows are locked (the caller decides: wait for one lead, or skip locked ones
   when sweeping many).
2. The RotationCursor rows of the batch's ZIP codes are created if needed and locked, in
   ZIP code order. This serialises distribution within a ZIP code.
3. The territories covering those ZIP codes are read together with their subscriptions
   and agencies, locked FOR KEY SHARE. Distributions never wait for each other on these
   rows, but an unsubscribe, a territory removal, a suspension or a pause (all FOR
   UPDATE) either commits before (and is seen) or waits until these offers are committed.
   Capped subscriptions are then taken in turn through an advisory lock per subscription,
   in agency order, so their cap counts are exact.
4. The eligible agencies of a ZIP code, in a stable order (agency id), are: active,
   accepting leads, below their plan's cap for the current period, and never offered this
   lead before. A lead goes to the first eligible agency after the one that got its ZIP
   code's last offer (wrapping around). While the eligible set stays the same, per-agency
   counts in a ZIP code never differ by more than one; an agency joining or leaving is
   simply in or out of the ordered list, so the others keep their order.
5. Each offer records its decision trace; leads become `offered` (or `unassigned` when
   nobody is eligible); the cursors move; the agencies' notifications are pushed after
   commit. The writes are one statement of each kind for the whole batch.

Lock order everywhere: lead rows, then every cursor of the batch (in ZIP code order),
then territory/subscription/agency rows, then cap locks (in agency order). A transaction
never waits for a cursor while it holds a cap lock, so two distributions cannot deadlock.
"""

import contextlib
import logging
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, F, Max, Q
from django.utils import timezone

from agencies.models import Agency, AgencyStatus, NotificationKind
from agencies.notifications import notify, notify_many
from audit.services import record_action
from leadmarket import metrics
from leadmarket.bulk import copy_rows
from leadmarket.celery import enqueue_on_commit
from leadmarket.errors import Conflict, NotFound
from subscriptions.models import LIVE_STATUSES, Plan, Subscription, Territory

from .locks import CAP_LOCK_NAMESPACE
from .models import Lead, LeadStatus, Offer, OfferStatus, RejectReason, RotationCursor, SkipReason

logger = logging.getLogger(__name__)


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


@dataclass(slots=True)
class NewOffer:
    """An offer `record_outcome` is to store (a plain row: no model instance per offer)."""

    lead: Lead
    agency_id: int
    subscription_id: int | None
    decision: dict
    assigned_by_id: int | None = None
    pk: int | None = None  # set once stored

    @property
    def lead_id(self) -> int:
        return self.lead.id


@dataclass
class Outcome:
    offers: list[NewOffer] = field(default_factory=list)
    unassigned: list[Lead] = field(default_factory=list)


def offer_timeout() -> timedelta:
    return timedelta(minutes=settings.OFFER_TIMEOUT_MINUTES)


def lock_cursors(zipcodes: list[str]) -> dict[str, RotationCursor]:
    """The ZIP codes' rotation cursors, created on first use, locked in ZIP code order until
    commit.

    Leads of a ZIP code never seen before may arrive together: the primary key lets
    exactly one insert win and the others wait for its lock.
    """
    zipcodes = sorted(set(zipcodes))
    table = connection.ops.quote_name(RotationCursor._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # one statement text whatever the number of ZIP codes
            cursor.execute(
                f"INSERT INTO {table} (zipcode, offers_made) SELECT unnest(%s::varchar[]), 0"
                " ON CONFLICT (zipcode) DO NOTHING",
                [zipcodes],
            )
        else:
            cursor.execute(
                f"INSERT INTO {table} (zipcode, offers_made) VALUES {', '.join(['(%s, 0)'] * len(zipcodes))}"
                " ON CONFLICT (zipcode) DO NOTHING",
                zipcodes,
            )
    cursors = RotationCursor.objects.select_for_update().filter(zipcode__any=zipcodes).order_by("zipcode")
    # Not updated_at, which the rotation only writes: a timestamp is the dearest column to decode.
    return {cursor.zipcode: cursor for cursor in cursors.only("zipcode", "last_agency_id", "offers_made")}


def _candidates_sql(zipcodes: int, postgres: bool) -> str:
    territory, subscription = Territory._meta.db_table, Subscription._meta.db_table
    agency, plan = Agency._meta.db_table, Plan._meta.db_table
    live = ", ".join(["%s"] * len(LIVE_STATUSES))
    in_zipcodes = "= ANY(%s::varchar[])" if postgres else f"IN ({', '.join(['%s'] * zipcodes)})"
    sql = (
        f"SELECT t.zipcode, s.agency_id, s.id, a.status, a.accepting_leads, p.monthly_lead_cap"
        f" FROM {territory} t JOIN {subscription} s ON s.id = t.subscription_id"
        f" JOIN {agency} a ON a.id = s.agency_id JOIN {plan} p ON p.id = s.plan_id"
        f" WHERE t.zipcode {in_zipcodes}"
        f" AND s.status IN ({live})"
        f" AND s.current_period_start <= %s AND s.current_period_end > %s"
        f" ORDER BY s.agency_id, s.id"
    )
    # KEY SHARE: distributions never wait for each other on these rows, while an
    # unsubscribe, a removed ZIP code, a suspension or a pause (which take FOR UPDATE)
    # either commits first and is seen, or waits until this offer is committed. The
    # subscription first: a territory removal locks its subscription, then deletes the
    # territory row, so taking the territory first could deadlock with it.
    return sql + " FOR KEY SHARE OF s, a, t" if postgres else sql


def lock_candidates(zipcodes: list[str], *, now: datetime) -> dict[str, list[Candidate]]:
    """The agencies whose live subscriptions cover each of `zipcodes` now, locked, with
    exact cap counts. A subscription covering several of the ZIP codes is one Candidate,
    so its cap counts every offer made in the transaction."""
    postgres = connection.vendor == "postgresql"
    zipcodes = sorted(set(zipcodes))
    candidates: dict[int, Candidate] = {}
    by_zipcode: dict[str, list[Candidate]] = {zipcode: [] for zipcode in zipcodes}
    with connection.cursor() as cursor:
        zipcode_params = [zipcodes] if postgres else zipcodes
        cursor.execute(_candidates_sql(len(zipcodes), postgres), [*zipcode_params, *LIVE_STATUSES, now, now])
        for zipcode, agency_id, subscription_id, status, accepting, cap in cursor.fetchall():
            candidate = candidates.setdefault(
                subscription_id,
                Candidate(
                    agency_id=agency_id,
                    subscription_id=subscription_id,
                    agency_status=status,
                    accepting_leads=accepting,
                    cap=cap,
                ),
            )
            by_zipcode[zipcode].append(candidate)
        capped = [sid for sid, candidate in candidates.items() if candidate.cap is not None]
        if postgres:
            for subscription_id in capped:  # in agency order, like every other distribution
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [CAP_LOCK_NAMESPACE, subscription_id])
    if capped:
        counts = (
            Offer.objects.counting_towards_cap()
            .filter(subscription_id__in=capped, offered_at__gte=F("subscription__current_period_start"))
            .values("subscription_id")
            .annotate(received=Count("id"))
        )
        for row in counts:
            candidates[row["subscription_id"]].received = row["received"]
    return by_zipcode


COVERAGE_CACHE_SECONDS = 300


def _coverage_key(zipcode: str) -> str:
    return f"zip-coverage:v1:{zipcode}"


def uncovered_zipcodes(zipcodes: list[str], *, now: datetime) -> set[str]:
    """Those of `zipcodes` that no live subscription holds, from a Redis cache.

    Many leads come from ZIP codes nobody buys; the cached "no" lets them skip the
    cursor lock and the territory read. Only a cached "no" can mislead, and coverage
    only grows where `retry_unassigned_in` runs, which drops these entries after commit
    and retries the ZIP codes' unassigned leads without the cache. One cache round trip
    and at most one query for the whole batch; a cache outage costs the query.
    """
    keys = {_coverage_key(zipcode): zipcode for zipcode in set(zipcodes)}
    try:
        cached = {keys[key]: covered for key, covered in cache.get_many(list(keys)).items()}
    except Exception:
        logger.warning("coverage cache unavailable", exc_info=True)
        cached = {}
    missing = [zipcode for zipcode in keys.values() if zipcode not in cached]
    if missing:
        held = set(Territory.objects.covering(missing, now=now).values_list("zipcode", flat=True))
        found = {zipcode: zipcode in held for zipcode in missing}
        cached.update(found)
        with contextlib.suppress(Exception):
            cache.set_many(
                {_coverage_key(zipcode): covered for zipcode, covered in found.items()}, COVERAGE_CACHE_SECONDS
            )
    return {zipcode for zipcode, covered in cached.items() if not covered}


def next_in_rotation(eligible_agency_ids: list[int], last_agency_id: int | None) -> int:
    """The first agency after `last_agency_id` in id order, wrapping around."""
    for agency_id in eligible_agency_ids:
        if last_agency_id is None or agency_id > last_agency_id:
            return agency_id
    return eligible_agency_ids[0]


def distribute(*, leads: list[Lead], now: datetime, use_coverage_cache: bool = False) -> Outcome:
    """Offers each of `leads` (locked by the caller, in arrival order, any ZIP codes) to the
    next eligible agency of its ZIP code's rotation; leads nobody can take become
    `unassigned`. One cursor lock per ZIP code, one eligibility read and one write of each
    kind for the whole batch.

    `use_coverage_cache` lets leads of ZIP codes nobody covers skip the locks (the hot
    path of new leads); retries read the database, so a stale cache entry delays a lead
    by one sweep at most. Runs inside the caller's transaction.
    """
    by_zipcode: dict[str, list[Lead]] = defaultdict(list)
    for lead in leads:
        by_zipcode[lead.zipcode].append(lead)
    outcome = Outcome()
    if use_coverage_cache:
        for zipcode in uncovered_zipcodes(list(by_zipcode), now=now):
            outcome.unassigned += by_zipcode.pop(zipcode)
    if by_zipcode:
        cursors = lock_cursors(list(by_zipcode))
        candidates = lock_candidates(list(by_zipcode), now=now)
        previously_offered = defaultdict(set)
        lead_ids = [lead.id for lead in leads]
        for lead_id, agency_id in Offer.objects.filter(lead_id__any=lead_ids).values_list("lead_id", "agency_id"):
            previously_offered[lead_id].add(agency_id)
        moved = []
        for zipcode, zipcode_leads in by_zipcode.items():
            if _rotate(cursors[zipcode], zipcode_leads, candidates[zipcode], previously_offered, outcome):
                moved.append(cursors[zipcode])
        _save_cursors(moved, now=now)
    record_outcome(outcome, now=now)
    logger.info(
        "distributed %d lead(s) in %s: %s offered, %d unassigned",
        len(leads),
        ", ".join(sorted({lead.zipcode for lead in leads})[:20]),
        ", ".join(f"{offer.lead_id}->{offer.agency_id}" for offer in outcome.offers[:20]) or "none",
        len(outcome.unassigned),
    )
    return outcome


def _save_cursors(cursors: list[RotationCursor], *, now: datetime) -> None:
    """One UPDATE for the cursors that moved (Django's bulk_update built a CASE per row,
    which cost more than the rest of a batch)."""
    if not cursors:
        return
    table = connection.ops.quote_name(RotationCursor._meta.db_table)
    columns = [[c.zipcode for c in cursors], [c.last_agency_id for c in cursors], [c.offers_made for c in cursors]]
    if connection.vendor == "postgresql":  # three arrays: no statement of a thousand parameters to parse
        moved, params = "unnest(%s::varchar[], %s::bigint[], %s::bigint[])", columns
    else:
        moved = f"(VALUES {', '.join(['(%s, CAST(%s AS bigint), CAST(%s AS bigint))'] * len(cursors))})"
        params = [value for row in zip(*columns, strict=True) for value in row]
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH moved (zipcode, last_agency_id, offers_made) AS (SELECT * FROM {moved})"
            f" UPDATE {table} SET last_agency_id = moved.last_agency_id, offers_made = moved.offers_made,"
            f" updated_at = %s FROM moved WHERE {table}.zipcode = moved.zipcode",
            [*params, now],
        )


def _rotate(cursor, leads, candidates, previously_offered, outcome: Outcome) -> bool:
    """The rotation of one ZIP code over `leads`: adds to `outcome`, moves `cursor`, and
    says whether it moved."""
    moved = False
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
            NewOffer(
                lead=lead,
                agency_id=chosen.agency_id,
                subscription_id=chosen.subscription_id,
                decision={
                    "mode": "rotation",
                    "zipcode": cursor.zipcode,
                    "eligible": [candidate.agency_id for candidate in eligible],
                    "position_before": cursor.last_agency_id,
                    "position_after": chosen.agency_id,
                    "skipped": skipped,
                },
            )
        )
        cursor.last_agency_id = chosen.agency_id
        cursor.offers_made += 1
        chosen.received += 1
        previously_offered[lead.id].add(chosen.agency_id)
        moved = True
    return moved


def _offer_body(lead: Lead) -> str:
    kind = f"{lead.lead_type} lead" if lead.lead_type else "Lead"
    place = ", ".join(part for part in (lead.city, lead.state) if part)
    return (
        f"{kind.capitalize()} in {lead.zipcode}{f' ({place})' if place else ''}. "
        f"Accept it within {settings.OFFER_TIMEOUT_MINUTES} minutes."
    )


OFFER_ROW = ("lead_id", "agency_id", "subscription_id", "assigned_by_id", "offered_at", "expires_at", "decision")


def record_outcome(outcome: Outcome, *, now: datetime) -> None:
    """Stores the offers, moves the leads' status, and notifies the agencies after commit."""
    expires_at = now + offer_timeout()
    ids = copy_rows(
        Offer,
        OFFER_ROW,
        [
            (
                offer.lead.id,
                offer.agency_id,
                offer.subscription_id,
                offer.assigned_by_id,
                now,
                expires_at,
                offer.decision,
            )
            for offer in outcome.offers
        ],
    )
    for offer, offer_id in zip(outcome.offers, ids, strict=True):
        offer.pk = offer_id
    if outcome.offers:
        offered = len(outcome.offers)
        transaction.on_commit(lambda: metrics.offers.labels("offered").inc(offered))
    for offer in outcome.offers:
        offer.lead.status, offer.lead.status_changed_at = LeadStatus.OFFERED, now
    offered_ids = [offer.lead_id for offer in outcome.offers]
    if offered_ids:
        Lead.objects.filter(id__any=offered_ids).update(status=LeadStatus.OFFERED, status_changed_at=now)
    newly_unassigned = [lead for lead in outcome.unassigned if lead.status != LeadStatus.UNASSIGNED]
    for lead in newly_unassigned:  # a retried lead keeps the time it became unassigned
        lead.status, lead.status_changed_at = LeadStatus.UNASSIGNED, now
    if newly_unassigned:
        Lead.objects.filter(id__any=[lead.id for lead in newly_unassigned]).update(
            status=LeadStatus.UNASSIGNED, status_changed_at=now
        )
    notify_many(
        [
            {
                "agency_id": offer.agency_id,
                "kind": NotificationKind.LEAD_OFFERED,
                "title": "New lead waiting for you",
                "body": _offer_body(offer.lead),
                "data": {"lead_id": offer.lead_id, "offer_id": offer.pk},
            }
            for offer in outcome.offers
        ],
        now=now,
    )


# --- Use cases ---------------------------------------------------------------------------

# Leads per transaction. A batch's fixed cost (a commit, and reading the candidates and
# cursors of its ZIP codes, which a batch spread over many ZIP codes pays in full) is shared
# by more leads: 1,000 redistributed 1.4x faster than 500 on the bench, while a batch still
# holds its ZIP codes' cursors for only a fraction of a second.
BATCH_SIZE = 1000
# Only what distribution and the notification text read of a batch's leads: loading (and
# decoding) every column of every lead was a large share of a batch's time, and timestamps
# are the dearest to decode (status_changed_at is written, never read).
BATCH_LEAD_FIELDS = ("id", "zipcode", "status", "lead_type", "city", "state")


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


def distribute_new_leads(*, batch_size: int = BATCH_SIZE) -> int:
    """Offers the leads still `new` that were stored when this run started, oldest first,
    `batch_size` per transaction (any ZIP codes): the hand-off after a webhook
    (`request_distribution`) and the periodic catch-up after a broker or worker outage.
    Leads another run holds are skipped (that run offers them). Returns how many leads
    were distributed.

    The bound is the largest lead id at the start, not a time: `received_at` comes from
    the web servers' clocks, and a lead committed before the run started must be in it.
    """
    last_id = Lead.objects.aggregate(last=Max("id"))["last"] or 0
    distributed, position = 0, Q()
    while True:
        with transaction.atomic():
            leads = list(
                Lead.objects.filter(position, status=LeadStatus.NEW, id__lte=last_id)
                .select_for_update(no_key=True, skip_locked=True)
                .only(*BATCH_LEAD_FIELDS, "received_at")  # the run's position
                .order_by("received_at", "id")[:batch_size]
            )
            if not leads:
                return distributed
            distribute(leads=leads, now=timezone.now(), use_coverage_cache=True)
        distributed += len(leads)
        if len(leads) < batch_size:  # the last batch (a run after a burst usually has one)
            return distributed
        position = Q(received_at__gt=leads[-1].received_at) | Q(received_at=leads[-1].received_at, id__gt=leads[-1].id)


def _expire_in_zipcode(*, zipcode: str, now: datetime, filters: Q, batch_size: int) -> tuple[int, Outcome]:
    """One transaction: expire the overdue offers of a batch of one ZIP code's leads and
    offer those leads on."""
    with transaction.atomic():
        leads = list(
            Lead.objects.filter(
                filters,
                zipcode=zipcode,
                status=LeadStatus.OFFERED,
                offers__status=OfferStatus.OFFERED,
                offers__expires_at__lte=now,
            )
            .select_for_update(no_key=True, skip_locked=True, of=("self",))
            .order_by("received_at", "id")[:batch_size]
        )
        if not leads:
            return 0, Outcome()
        overdue = list(Offer.objects.live().filter(lead__in=leads, expires_at__lte=now).select_related("lead"))
        Offer.objects.filter(pk__in=[offer.pk for offer in overdue]).update(
            status=OfferStatus.EXPIRED, responded_at=now
        )
        transaction.on_commit(lambda: metrics.offers.labels("expired").inc(len(overdue)))
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
        return len(overdue), distribute(leads=[offer.lead for offer in overdue], now=now)


def _add(summary: RedistributionSummary, outcome: Outcome) -> None:
    summary.offered += len(outcome.offers)
    summary.unassigned += len(outcome.unassigned)


def expire_offers(
    *,
    now: datetime,
    filters: Q | None = None,
    partition: tuple[int, int] | None = None,
    limit: int | None = None,
    batch_size: int = BATCH_SIZE,
    progress=None,
) -> RedistributionSummary:
    """Expires offers past their deadline and offers each lead to the next eligible agency
    at once (or makes it `unassigned`), one ZIP code per transaction. One pass over the ZIP
    codes with overdue offers; safe to run concurrently (batches skip leads another run
    holds, which the next run picks up)."""
    filters = filters or Q()
    summary = RedistributionSummary()
    zipcodes = (
        Lead.objects.filter(
            filters, status=LeadStatus.OFFERED, offers__status=OfferStatus.OFFERED, offers__expires_at__lte=now
        )
        .values_list("zipcode", flat=True)
        .distinct()
        .order_by("zipcode")
    )
    for zipcode in list(zipcodes):
        if partition and zip_part(zipcode, partition[1]) != partition[0]:
            continue
        while limit is None or summary.expired < limit:
            size = batch_size if limit is None else min(batch_size, limit - summary.expired)
            expired, outcome = _expire_in_zipcode(zipcode=zipcode, now=now, filters=filters, batch_size=size)
            if not expired:
                break
            summary.expired += expired
            _add(summary, outcome)
            if progress:
                progress(summary)
    return summary


def retry_unassigned(
    *,
    now: datetime,
    filters: Q | None = None,
    partition: tuple[int, int] | None = None,
    limit: int | None = None,
    batch_size: int = BATCH_SIZE,
    progress=None,
) -> RedistributionSummary:
    """Offers unassigned leads again, oldest first, in batches of leads of any ZIP codes that
    a live subscription holds, one transaction each (see `distribute`). Leads of ZIP codes
    nobody covers are not touched; leads another run holds are skipped."""
    filters = filters or Q()
    summary = RedistributionSummary()
    live = Territory.objects.live()
    covered = Q(zipcode__in=live.values("zipcode"))
    if partition:  # this part's ZIP codes, listed: PostgreSQL estimates a list, not a hash of the column
        part, parts = partition
        zipcodes = set(live.values_list("zipcode", flat=True))
        covered = Q(zipcode__any=sorted(zipcode for zipcode in zipcodes if zip_part(zipcode, parts) == part))
    after_id = 0
    while limit is None or summary.examined < limit:
        size = batch_size if limit is None else min(batch_size, limit - summary.examined)
        with transaction.atomic():
            leads = list(
                Lead.objects.filter(filters, covered, status=LeadStatus.UNASSIGNED, id__gt=after_id)
                .select_for_update(no_key=True, skip_locked=True)
                .only(*BATCH_LEAD_FIELDS)
                .order_by("id")[:size]
            )
            if not leads:
                break
            after_id = leads[-1].id
            _add(summary, distribute(leads=leads, now=now))
        summary.examined += len(leads)
        if progress:
            progress(summary)
    return summary


def zip_part(zipcode: str, parts: int) -> int:
    """Which of `parts` parts of the ZIP codes `zipcode` is in, the same in every process
    (CRC-32, not Python's salted hash). Runs over different parts share no ZIP code, so they
    never wait for each other's rotation cursors."""
    return zlib.crc32(zipcode.encode()) % parts


def redistribute_leads(
    *,
    now: datetime,
    zipcode: str | None = None,
    portal_id: int | None = None,
    since: datetime | None = None,
    partition: tuple[int, int] | None = None,
    limit: int | None = None,
    progress=None,
) -> RedistributionSummary:
    """Re-offers leads whose offer expired and retries unassigned leads (optionally for one
    ZIP code, one portal, leads received since a time, or the ZIP codes of one `partition`:
    (part, parts), see `zip_part`). `limit` bounds each kind of lead of this call (of its
    part). Idempotent and safe while webhooks arrive and while another copy runs."""
    filters = Q()
    if zipcode:
        filters &= Q(zipcode=zipcode)
    if portal_id:
        filters &= Q(portal_id=portal_id)
    if since:
        filters &= Q(received_at__gte=since)
    expired = expire_offers(now=now, filters=filters, partition=partition, limit=limit, progress=progress)
    retried = retry_unassigned(now=now, filters=filters, partition=partition, limit=limit, progress=progress)
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
    lead = Lead.objects.select_for_update(no_key=True).filter(pk=lead_id).first()
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
    transaction.on_commit(lambda: metrics.offers.labels("accepted").inc())
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
    distribute(leads=[lead], now=now)
    transaction.on_commit(lambda: metrics.offers.labels("rejected").inc())
    return offer


def _withdraw_live_offer(lead: Lead, *, now: datetime, reason: str) -> Offer | None:
    live = Offer.objects.live().filter(lead=lead).first()
    if live is None:
        return None
    live.status, live.responded_at = OfferStatus.WITHDRAWN, now
    live.save(update_fields=["status", "responded_at"])
    transaction.on_commit(lambda: metrics.offers.labels("withdrawn").inc())
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


@dataclass
class Withdrawal:
    withdrawn: int = 0
    offered: int = 0
    unassigned: int = 0


def withdraw_agency_offers(
    *, agency_id: int, actor, now: datetime, reason: str, ip: str | None = None, batch_size: int = BATCH_SIZE
) -> Withdrawal:
    """Withdraws every live offer of an agency taken out of rotation (suspended) and offers
    each of those leads to the next eligible agency at once (or makes it `unassigned`).

    One transaction per batch of one ZIP code's leads, taking locks in the engine's order:
    the lead rows (by id), then the ZIP code's cursor and its territory/subscription/agency
    rows. The caller must
    have committed the agency's new status already, so no new offer to it can appear while
    this runs (see `agencies.services.update_agency`). Idempotent: nothing live, nothing done.
    Each batch is audited (`agency.offers_withdrawn`) in its own transaction.
    """
    summary = Withdrawal()
    while True:
        with transaction.atomic():
            live_offers = Offer.objects.live().filter(agency_id=agency_id)
            zipcode = live_offers.order_by("lead__zipcode").values_list("lead__zipcode", flat=True).first()
            if zipcode is None:
                return summary
            lead_ids = list(
                live_offers.filter(lead__zipcode=zipcode)
                .order_by("lead_id")
                .values_list("lead_id", flat=True)[:batch_size]
            )
            leads = list(Lead.objects.select_for_update(no_key=True).filter(id__in=lead_ids).order_by("id"))
            # Under the lead locks: an offer may have been accepted or expired meanwhile.
            live = list(Offer.objects.live().filter(agency_id=agency_id, lead__in=leads).order_by("lead_id"))
            moving = {offer.lead_id for offer in live}
            Offer.objects.filter(pk__in=[offer.pk for offer in live]).update(
                status=OfferStatus.WITHDRAWN, responded_at=now
            )
            leads = [lead for lead in leads if lead.id in moving]
            notify_many(
                [
                    {
                        "agency_id": agency_id,
                        "kind": NotificationKind.LEAD_REASSIGNED,
                        "title": "Lead reassigned",
                        "body": f"The lead in {lead.zipcode} is no longer yours to accept ({reason}).",
                        "data": {"lead_id": lead.id},
                    }
                    for lead in leads
                ],
                now=now,
            )
            moved_to: dict[int, int | None] = {lead.id: None for lead in leads}
            outcome = distribute(leads=leads, now=now)
            for offer in outcome.offers:
                moved_to[offer.lead_id] = offer.agency_id
            summary.offered += len(outcome.offers)
            summary.unassigned += len(outcome.unassigned)
            summary.withdrawn += len(live)
            record_action(
                actor=actor,
                action="agency.offers_withdrawn",
                target=Agency(pk=agency_id),
                metadata={"reason": reason, "moved_to": {str(lead_id): to for lead_id, to in moved_to.items()}},
                ip=ip,
            )


@transaction.atomic
def assign_lead(
    *, lead_id: int, actor, agency_id: int | None = None, force: bool = False, now: datetime, ip: str | None = None
) -> Lead:
    """Staff distribute a lead by hand: to the next agency in rotation (`agency_id` None) or to
    one agency, which must be active and cover the lead's ZIP code unless `force` (audited).

    A live offer to another agency is withdrawn first. Raises NotFound, LeadNotDistributable
    (accepted; duplicate or test without force), or ValidationError on `agency_id`.
    """
    lead = Lead.objects.select_for_update(no_key=True).filter(pk=lead_id).first()
    if lead is None:
        raise NotFound("Lead not found.")
    if lead.status == LeadStatus.ACCEPTED or (lead.status in (LeadStatus.DUPLICATE, LeadStatus.TEST) and not force):
        raise LeadNotDistributable(
            f"The lead is {lead.status} and cannot be distributed"
            + ("." if lead.status == LeadStatus.ACCEPTED else "; use force to override.")
        )
    before = {"status": lead.status, "duplicate_of": lead.duplicate_of_id}
    if lead.duplicate_of_id:  # forced: staff judged it a lead of its own
        lead.duplicate_of = None
        lead.save(update_fields=["duplicate_of"])
    withdrawn = _withdraw_live_offer(lead, now=now, reason="reassigned by staff")
    if agency_id is None:
        outcome = distribute(leads=[lead], now=now)
        chosen = outcome.offers[0].agency_id if outcome.offers else None
    else:
        chosen = _assign_to(lead, agency_id=agency_id, actor=actor, force=force, now=now)
    lead.refresh_from_db(fields=["status", "status_changed_at"])
    record_action(
        actor=actor,
        action="lead.force_assigned" if force and agency_id else "lead.distributed_manually",
        target=lead,
        before=before,
        after={"status": lead.status, "duplicate_of": lead.duplicate_of_id},
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
    lock_cursors([lead.zipcode])  # same lock order as the rotation, though the cursor does not move
    candidate = next(
        (c for c in lock_candidates([lead.zipcode], now=now)[lead.zipcode] if c.agency_id == agency_id), None
    )
    if not force:
        # The candidate's status was read under its lock; a suspension cannot slip in between.
        if (candidate.agency_status if candidate else agency.status) != AgencyStatus.ACTIVE:
            raise ValidationError({"agency_id": ["The agency is not active."]})
        if candidate is None:
            raise ValidationError({"agency_id": ["The agency's subscription does not cover this ZIP code."]})
    if Offer.objects.filter(lead=lead, agency_id=agency_id).exists():
        raise LeadNotDistributable("This lead was already offered to that agency.")
    offer = NewOffer(
        lead=lead,
        agency_id=agency_id,
        subscription_id=candidate.subscription_id if candidate else None,
        assigned_by_id=actor.pk if actor else None,
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
            .select_for_update(no_key=True, skip_locked=True, of=("self",))
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
    if not zipcodes:
        return

    def forget_coverage():
        try:
            cache.delete_many([_coverage_key(zipcode) for zipcode in zipcodes])
        except Exception:  # entries expire on their own; the minute sweep retries meanwhile
            logger.warning("coverage cache unavailable", exc_info=True)

    transaction.on_commit(forget_coverage)
    enqueue_on_commit(redistribute_leads, zipcodes=zipcodes)
