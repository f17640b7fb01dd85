"""Write use cases of leads: storing a mapped lead, and handing it to distribution."""

import contextlib
import logging
from datetime import datetime, timedelta

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Q

from leadmarket.celery import try_enqueue

from .models import Lead, LeadStatus

logger = logging.getLogger(__name__)

# Set while a distribution run is queued and not yet started: a burst of leads needs one
# run, not one task per lead (a Celery publish cost the webhook more CPU than its inserts).
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
    with transaction.atomic(savepoint=False):
        status, original_id = (LeadStatus.TEST, None) if values.get("is_test") else (LeadStatus.NEW, None)
        if status == LeadStatus.NEW and portal.duplicate_window_days:
            original_id = _find_original(values=values, since=now - timedelta(days=portal.duplicate_window_days))
            if original_id is not None:
                status = LeadStatus.DUPLICATE
        lead = Lead.objects.create(
            portal=portal,
            status=status,
            received_at=now,
            status_changed_at=now,
            idempotency_key=idempotency_key,
            duplicate_of_id=original_id,
            **values,
        )
        if status == LeadStatus.NEW:
            transaction.on_commit(request_distribution)
    return lead


# The webhook's hot path: raw SQL skips ~1 ms of ORM compilation per lead. One branch per
# contact field, each served by its (zipcode, contact, received_at) index; an OR of the two
# would scan every recent lead of the ZIP code.
# Each branch is wrapped in a derived table so the UNION is valid on SQLite as well.
_ORIGINAL_BRANCH = (
    "SELECT id, received_at FROM (SELECT id, received_at FROM leads_lead WHERE zipcode = %s AND {field} = %s"
    " AND received_at >= %s AND NOT is_test AND status <> 'duplicate'"
    " ORDER BY received_at, id LIMIT 1) AS {field}_match"
)


def _find_original(*, values: dict, since: datetime) -> int | None:
    """The id of the earliest recent non-duplicate lead with this ZIP and phone or email."""
    branches, params = [], []
    for name in ("phone", "email"):
        if values.get(name):
            branches.append(_ORIGINAL_BRANCH.format(field=name))
            params += [values["zipcode"], values[name], since]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Two matching leads arriving together must not both be originals: serialise
            # the check-and-insert per ZIP code until the transaction ends.
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"lead-dedupe:{values['zipcode']}"])
        union = " UNION ALL ".join(branches)
        cursor.execute(f"SELECT id FROM ({union}) AS candidates ORDER BY received_at, id LIMIT 1", params)
        row = cursor.fetchone()
    return row[0] if row else None


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
    """Queues a run of `distribute_new_leads` unless one is queued and has not started yet.

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
    if first and not try_enqueue(_distribute_new_leads_task()):
        with contextlib.suppress(Exception):
            cache.delete(DISTRIBUTION_QUEUED_KEY)


def distribution_started() -> None:
    """Called by a run before it reads: leads committed from now on queue another run."""
    try:
        cache.delete(DISTRIBUTION_QUEUED_KEY)
    except Exception:
        logger.warning("distribution flag unavailable", exc_info=True)
