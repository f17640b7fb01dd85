"""Write use cases of leads: storing a mapped lead, and handing it to distribution."""

import contextlib
import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from time import monotonic
from time import time as wall_clock

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.db.models import Q

from leadmarket import prepared
from leadmarket.bulk import insert_fields, insert_one, insert_params, saved
from leadmarket.celery import try_enqueue

from .locks import DUPLICATE_LOCK_NAMESPACE
from .models import Lead, LeadStatus

logger = logging.getLogger(__name__)

# Set while a distribution run is queued and not yet started, to the time (epoch seconds)
# it starts: a burst of leads needs one run, not one task per lead (a Celery publish cost
# the webhook more CPU than its inserts), and the run starts DISTRIBUTION_DELAY_SECONDS
# later so that the burst is one batch.
DISTRIBUTION_QUEUED_KEY = "leads:distribution-queued"
# A run lost from the queue silences new requests for at most this long; the periodic run
# (CELERY_BEAT_SCHEDULE "distribute-new-leads") distributes in the meantime.
DISTRIBUTION_QUEUED_SECONDS = 60
# How far the clocks of web and worker hosts may disagree (NTP keeps them within
# milliseconds). A lead skipped by a run that started earlier still waits only for the next
# run, which the next lead after the margin queues (or the periodic run).
CLOCK_MARGIN_SECONDS = 0.1
# A queued run that is due (or overdue: the worker is behind) may start at any moment. A
# process that finds one asks again only after this long; the run's follow-up pass, which
# starts this long (and the clock margin) after the run, reads the leads the process
# committed meanwhile. Without it, every lead asked Redis for as long as the worker was behind.
DISTRIBUTION_RECHECK_SECONDS = 0.1
# Until then (this process's monotonic clock, which no step of the wall clock moves), a
# queued run, or its follow-up, will read the leads committed here: they need no request
# of their own (no Redis round trip).
_skip_requests_until = 0.0


@dataclass(frozen=True)
class LeadCompanion:
    """A row of another model that points to a new lead and is stored with it, in the lead's
    own statement on PostgreSQL: the webhook's reception, so that the lead and its audit row
    cost one round trip and commit together or not at all. `if_duplicate` holds the field
    values the row takes instead when the lead is stored as a duplicate."""

    row: models.Model
    lead_field: str
    if_duplicate: dict = field(default_factory=dict)


def create_lead(
    *, portal, values: dict, idempotency_key: str, now: datetime, companion: LeadCompanion | None = None
) -> Lead:
    """Stores a validated standard lead (see `leads.standard.normalize_lead`) for `portal`,
    and `companion` with it.

    A lead whose phone or email and ZIP match a non-duplicate lead of the last
    `portal.duplicate_window_days` days, from any portal, is stored as `duplicate` linked
    to it; a test lead is stored as `test`; both are never distributed. A `new` lead is
    handed to distribution after commit.

    On PostgreSQL this is one statement, preceded by the duplicate locks and sent with
    them in one round trip (prepared, in one pipeline: `leadmarket.prepared`): in
    autocommit mode they are their own transaction (no BEGIN and COMMIT round trips);
    inside a caller's transaction they run in a savepoint.

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
    connection = connections[DEFAULT_DB_ALIAS]  # the wrapper itself, not the thread-local proxy
    check_since = None
    if lead.status == LeadStatus.NEW and portal.duplicate_window_days:
        check_since = now - timedelta(days=portal.duplicate_window_days)
    if connection.vendor == "postgresql":
        in_transaction = connection.in_atomic_block or not connection.get_autocommit()
        with transaction.atomic() if in_transaction else contextlib.nullcontext():
            _insert_lead(lead, check_since=check_since, companion=companion)
    else:  # SQLite (development): no data-modifying CTE, so two statements in a transaction
        with transaction.atomic():
            _insert_lead(lead, check_since=check_since, companion=None)
            if companion:
                insert_one(_attached(companion, lead))
    if lead.status == LeadStatus.NEW:
        connection.on_commit(request_distribution)
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


_DUPLICATE_LOCK = "SELECT pg_advisory_xact_lock(%s::int, %s::int)"


def _insert_lead(lead: Lead, *, check_since: datetime | None, companion: LeadCompanion | None) -> None:
    """Inserts `lead` (and, on PostgreSQL, `companion`) in one round trip. With `check_since`,
    the lead is stored as `duplicate` of the earliest matching lead since then, if any.

    Two leads that could match each other share a ZIP code and a phone or an email, so they
    share one of the locks of (ZIP code, contact) and take turns (both cannot be originals);
    leads of one busy ZIP code with other contacts do not wait for each other. The locks are
    taken in key order (no deadlock), and the insert is a later statement of the same
    transaction, so its snapshot sees a lead committed by the previous holder.
    """
    connection = connections[DEFAULT_DB_ALIAS]
    branches, params, lock_keys = [], [], []
    for name in ("phone", "email") if check_since else ():
        if value := getattr(lead, name):
            branches.append(_ORIGINAL_BRANCH.format(field=name))
            params += [lead.zipcode, value, check_since]
            lock_keys.append(_duplicate_lock_key(lead.zipcode, name, value))
    ctes = []
    if branches:
        original = f"SELECT id FROM ({' UNION ALL '.join(branches)}) AS candidates ORDER BY received_at, id LIMIT 1"
        ctes.append(f"original AS (SELECT ({original}) AS id)")
        status = "CASE WHEN (SELECT id FROM original) IS NULL THEN %s ELSE %s END, (SELECT id FROM original)"
        status_params = [lead.status, LeadStatus.DUPLICATE]
    else:
        status, status_params = "%s, NULL", [lead.status]
    fields, columns = insert_fields(Lead, exclude=("status", "duplicate_of"))
    insert = (
        f"INSERT INTO leads_lead ({columns}, status, duplicate_of_id)"
        f" VALUES ({', '.join(['%s'] * len(fields))}, {status}) RETURNING id, status, duplicate_of_id"
    )
    params += [*insert_params(lead, fields), *status_params]
    if companion:
        companion_insert, companion_params = _companion_insert(companion)
        ctes += [f"new_lead AS ({insert})", f"companion AS ({companion_insert})"]
        insert = "SELECT id, status, duplicate_of_id, (SELECT id FROM companion) FROM new_lead"
        params += companion_params
    statement = f"WITH {', '.join(ctes)} {insert}" if ctes else insert
    if connection.vendor == "postgresql":
        # The locks and the insert in one round trip, prepared once per connection.
        locks = [(_DUPLICATE_LOCK, [DUPLICATE_LOCK_NAMESPACE, key]) for key in sorted(set(lock_keys))]
        pk, lead.status, lead.duplicate_of_id, *companion_pk = prepared.fetch_one([*locks, (statement, params)])
    else:
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            pk, lead.status, lead.duplicate_of_id, *companion_pk = cursor.fetchone()
    saved(lead, pk)
    if companion:
        saved(_attached(companion, lead), companion_pk[0])


def _companion_insert(companion: LeadCompanion) -> tuple[str, list]:
    """The INSERT of the companion's row as a CTE after `new_lead`, and its parameters."""
    connection = connections[DEFAULT_DB_ALIAS]
    model = type(companion.row)
    fields, columns = insert_fields(model)
    values, params = [], []
    for model_field, value in zip(fields, insert_params(companion.row, fields), strict=True):
        if model_field.name == companion.lead_field:
            values.append("(SELECT id FROM new_lead)")
        elif model_field.name in companion.if_duplicate:
            values.append("CASE WHEN (SELECT status FROM new_lead) = %s THEN %s ELSE %s END")
            instead = model_field.get_db_prep_save(companion.if_duplicate[model_field.name], connection)
            params += [LeadStatus.DUPLICATE, instead, value]
        else:
            values.append("%s")
            params.append(value)
    table, pk = (connection.ops.quote_name(name) for name in (model._meta.db_table, model._meta.pk.column))
    return f"INSERT INTO {table} ({columns}) VALUES ({', '.join(values)}) RETURNING {pk}", params


def _attached(companion: LeadCompanion, lead: Lead) -> models.Model:
    """The companion's row pointing to `lead`, with its duplicate values if `lead` is one."""
    setattr(companion.row, companion.lead_field, lead)
    if lead.status == LeadStatus.DUPLICATE:
        for name, value in companion.if_duplicate.items():
            setattr(companion.row, name, value)
    return companion.row


def _duplicate_lock_key(zipcode: str, contact_field: str, value: str) -> int:
    """A 32-bit key for (ZIP code, contact field, value): the same on every web server (not
    Python's per-process `hash`); two contacts sharing a key only wait for each other."""
    digest = hashlib.blake2b(f"{zipcode}:{contact_field}:{value}".encode(), digest_size=4).digest()
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
    """Makes sure a run of `distribute_new_leads` will read the leads committed so far: queues
    one to start DISTRIBUTION_DELAY_SECONDS from now, unless one is queued and has not
    started yet.

    The run takes every lead that is `new` when it starts (it clears the flag before it
    reads), so a lead committed before this call is either taken by the queued run (the
    flag is still there) or, if that run already started, gets a new one. Once this process
    knows when the queued run starts (it queued it, or read the flag), it skips the flag
    until shortly before then; when the run is due, for DISTRIBUTION_RECHECK_SECONDS, and
    the run's follow-up pass reads what it commits meanwhile.
    Failures are logged, never raised: the periodic run picks up what a broker or cache
    outage left behind.
    """
    global _skip_requests_until
    # Read before the flag: a skip counts from before the run could have seen it, however
    # long this process then waits for Redis, the broker or the CPU.
    checked_at = monotonic()
    if checked_at < _skip_requests_until:
        return
    now = wall_clock()
    starts_at = now + settings.DISTRIBUTION_DELAY_SECONDS
    task = _distribute_new_leads_task()
    try:
        # Read first: most leads find a run queued (one round trip, also while it is overdue).
        queued = cache.get(DISTRIBUTION_QUEUED_KEY)
        first = queued is None and cache.add(DISTRIBUTION_QUEUED_KEY, starts_at, DISTRIBUTION_QUEUED_SECONDS)
    except Exception:
        logger.warning("distribution flag unavailable; queueing a run", exc_info=True)
        queued, first = None, True
    if first:
        if not try_enqueue(task, countdown=settings.DISTRIBUTION_DELAY_SECONDS):
            # A process that read the flag meanwhile skips for one delay; the next run reads its leads.
            with contextlib.suppress(Exception):
                cache.delete(DISTRIBUTION_QUEUED_KEY)
            return
        queued = starts_at
    # Runs in this process at once (tasks without a broker) have read everything already.
    if isinstance(queued, float) and not task.app.conf.task_always_eager:
        # At most one delay ahead: a flag written by a host whose clock runs fast must not
        # silence this process for longer.
        ahead = min(queued - now, settings.DISTRIBUTION_DELAY_SECONDS) - CLOCK_MARGIN_SECONDS
        _skip_requests_until = checked_at + max(ahead, DISTRIBUTION_RECHECK_SECONDS)


def forget_queued_run() -> None:
    """Drops what this process knows of the queued run (tests: it outlives their cache)."""
    global _skip_requests_until
    _skip_requests_until = 0.0


def distribution_started() -> None:
    """Called by a run before it reads: leads committed from now on queue another run, and
    the run's follow-up pass is queued (see DISTRIBUTION_RECHECK_SECONDS)."""
    try:
        cache.delete(DISTRIBUTION_QUEUED_KEY)
    except Exception:
        logger.warning("distribution flag unavailable", exc_info=True)
    task = _distribute_new_leads_task()
    if not task.app.conf.task_always_eager:  # no process skips the flag then
        # Web processes skip from before their flag read (monotonic, no wall clock), which
        # came before this deletion; the margin is for the clock of the worker that runs
        # the follow-up against this one's, which sets its start.
        try_enqueue(task, countdown=DISTRIBUTION_RECHECK_SECONDS + CLOCK_MARGIN_SECONDS, follow_up=True)
