"""Write use cases of leads: storing a mapped lead, and handing it to distribution."""

import contextlib
import hashlib
import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Q

from leadmarket.bulk import insert_fields, insert_one, insert_params, saved
from leadmarket.celery import try_enqueue

from .locks import DUPLICATE_LOCK_NAMESPACE
from .models import Lead, LeadStatus

logger = logging.getLogger(__name__)

# Set while a distribution run is queued and not yet started: a burst of leads needs one
# run, not one task per lead (a Celery publish cost the webhook more CPU than its inserts),
# and the run starts DISTRIBUTION_DELAY_SECONDS later so that the burst is one batch.
DISTRIBUTION_QUEUED_KEY = "leads:distribution-queued"
# A run lost from the queue silences new requests for at most this long; the periodic run
# (CELERY_BEAT_SCHEDULE "distribute-new-leads") distributes in the meantime.
DISTRIBUTION_QUEUED_SECONDS = 60


def create_lead(*, portal, values: dict, idempotency_key: str, now: datetime) -> Lead:
    """Stores a validated standard lead (see `leads.standard.normalize_lead`) for `portal`.

    Runs inside the caller's transaction (the webhook writes its reception in the same
    one). A lead whose phone or email and ZIP match a non-duplicate lead of the last
    `portal.duplicate_window_days` days, from any portal, is stored as `duplicate` linked
    to it; a test lead is stored as `test`; both are never distributed. A `new` lead is
    handed to distribution after commit.

    Raises IntegrityError when the portal already sent this lead (same external_id or
    idempotency key): the unique constraints decide, so racing re-sends cannot both win.
    """
    lead = Lead(
        portal=portal,
        status=LeadStatus.TEST if values.get("is_test") else LeadStatus.NEW,
        received_at=now,
        status_changed_at=now,
        idempotency_key=idempotency_key,
        **values,
    )
    with transaction.atomic(savepoint=False):
        if lead.status == LeadStatus.NEW and portal.duplicate_window_days:
            _insert_new_or_duplicate(lead, since=now - timedelta(days=portal.duplicate_window_days))
        else:
            insert_one(lead)
        if lead.status == LeadStatus.NEW:
            transaction.on_commit(request_distribution)
    return lead


# The earliest recent non-duplicate lead with the ZIP code and phone or email: one branch
# per contact field, each served by its (zipcode, contact, received_at) index (an OR of the
# two would scan every recent lead of the ZIP code). Each branch is wrapped in a derived
# table so the UNION is valid on SQLite as well.
_ORIGINAL_BRANCH = (
    "SELECT id, received_at FROM (SELECT id, received_at FROM leads_lead WHERE zipcode = %s AND {field} = %s"
    " AND received_at >= %s AND NOT is_test AND status <> 'duplicate'"
    " ORDER BY received_at, id LIMIT 1) AS {field}_match"
)


def _insert_new_or_duplicate(lead: Lead, *, since: datetime) -> None:
    """Inserts `lead` as `new`, or as `duplicate` of the earliest matching lead since `since`.

    The webhook's hot path, so one round trip: the duplicate locks, then the check and the
    insert as one statement. Two leads that could match each other share a ZIP code and a
    phone or an email, so they share one of the locks of (ZIP code, contact) and take turns
    (both cannot be originals); leads of one busy ZIP code with other contacts do not wait
    for each other. The locks are taken in key order (no deadlock), and the insert starts
    after they are granted, so it sees a lead committed by the previous holder.
    """
    branches, params, lock_keys = [], [], []
    for name in ("phone", "email"):
        if getattr(lead, name):
            branches.append(_ORIGINAL_BRANCH.format(field=name))
            params += [lead.zipcode, getattr(lead, name), since]
            lock_keys.append(_duplicate_lock_key(lead.zipcode, name, getattr(lead, name)))
    if not branches:
        insert_one(lead)
        return
    fields, columns = insert_fields(Lead, exclude=("status", "duplicate_of"))
    original = f"SELECT id FROM ({' UNION ALL '.join(branches)}) AS candidates ORDER BY received_at, id LIMIT 1"
    insert = (
        f"WITH original AS (SELECT ({original}) AS id)"
        f" INSERT INTO leads_lead ({columns}, status, duplicate_of_id)"
        f" VALUES ({', '.join(['%s'] * len(fields))},"
        " CASE WHEN (SELECT id FROM original) IS NULL THEN %s ELSE %s END, (SELECT id FROM original))"
        " RETURNING id, status, duplicate_of_id"
    )
    params += [*insert_params(lead, fields), LeadStatus.NEW, LeadStatus.DUPLICATE]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # statements in one execute need client-side binding (the default)
            lock_keys = sorted(set(lock_keys))
            locks = "".join("SELECT pg_advisory_xact_lock(%s, %s); " for _ in lock_keys)
            cursor.execute(
                locks + insert, [*(part for key in lock_keys for part in (DUPLICATE_LOCK_NAMESPACE, key)), *params]
            )
            for _ in lock_keys:
                cursor.nextset()
        else:
            cursor.execute(insert, params)
        pk, lead.status, lead.duplicate_of_id = cursor.fetchone()
    saved(lead, pk)


def _duplicate_lock_key(zipcode: str, field: str, value: str) -> int:
    """A 32-bit key for (ZIP code, contact field, value): the same on every web server (not
    Python's per-process `hash`); two contacts sharing a key only wait for each other."""
    digest = hashlib.blake2b(f"{zipcode}:{field}:{value}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


def find_resent_lead(*, portal_id: int, external_id: str, idempotency_key: str) -> Lead | None:
    """The lead a re-send refers to (same portal and external id or idempotency key)."""
    match = Q()
    if external_id:
        match |= Q(external_id=external_id)
    if idempotency_key:
        match |= Q(idempotency_key=idempotency_key)
    if not match:
        return None
    return Lead.objects.filter(match, portal_id=portal_id).order_by("received_at", "id").first()


def _distribute_new_leads_task():
    from .tasks import distribute_new_leads  # the task module imports this one

    return distribute_new_leads


def request_distribution() -> None:
    """Queues a run of `distribute_new_leads`, to start DISTRIBUTION_DELAY_SECONDS from now,
    unless one is queued and has not started yet.

    The run takes every lead that is `new` when it starts, so a lead committed before this
    call is either taken by the queued run or, if that run already started, gets a new one
    (the run clears the flag before it reads). Failures are logged, never raised: the
    periodic run picks up what a broker or cache outage left behind.
    """
    try:
        first = cache.add(DISTRIBUTION_QUEUED_KEY, True, DISTRIBUTION_QUEUED_SECONDS)
    except Exception:
        logger.warning("distribution flag unavailable; queueing a run", exc_info=True)
        first = True
    if first and not try_enqueue(_distribute_new_leads_task(), countdown=settings.DISTRIBUTION_DELAY_SECONDS):
        with contextlib.suppress(Exception):
            cache.delete(DISTRIBUTION_QUEUED_KEY)


def distribution_started() -> None:
    """Called by a run before it reads: leads committed from now on queue another run."""
    try:
        cache.delete(DISTRIBUTION_QUEUED_KEY)
    except Exception:
        logger.warning("distribution flag unavailable", exc_info=True)
