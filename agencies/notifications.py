"""Notification services: devices, the in-app inbox, and pushing each notification once."""

import contextlib
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Q

from leadmarket.bulk import copy_rows
from leadmarket.celery import enqueue_on_commit, try_enqueue
from leadmarket.errors import NotFound

from .models import Agency, Device, DevicePlatform, Notification, NotificationKind, PushStatus
from .push import PushMessage, get_backend

logger = logging.getLogger(__name__)

# Longer than a push task may run (its hard time limit is 90 s).
STUCK_SENDING_AFTER = timedelta(minutes=2)
# How late a scheduled retry may be before the sweeper takes it as lost.
RETRY_GRACE = timedelta(minutes=2)


@transaction.atomic
def register_device(*, agency: Agency, token: str, platform: DevicePlatform, now: datetime) -> Device:
    """Registers an FCM token for the agency; a token registered before (by any agency)
    moves to this one and is active again."""
    device, _ = Device.objects.update_or_create(
        token=token,
        defaults={
            "agency": agency,
            "platform": platform,
            "is_active": True,
            "last_registered_at": now,
            "deactivated_at": None,
            "deactivation_reason": "",
        },
        create_defaults={"agency": agency, "platform": platform, "created_at": now, "last_registered_at": now},
    )
    return device


def unregister_device(*, agency: Agency, token: str) -> None:
    """Removes the agency's device. Raises NotFound for a token it does not hold."""
    deleted, _ = Device.objects.filter(agency=agency, token=token).delete()
    if not deleted:
        raise NotFound("No such device.")


NOTIFICATION_ROW = ("agency_id", "kind", "title", "body", "data", "created_at")


def _row(event: dict, now: datetime) -> tuple:
    data = {key: str(value) for key, value in event["data"].items()}  # FCM data values are strings
    return (event["agency_id"], event["kind"], event["title"], event["body"], data, now)


def notify_many(events: list[dict], *, now: datetime) -> list[int]:
    """Creates one inbox entry per event ({agency_id, kind, title, body, data}); once the
    caller's transaction commits, a push run is on its way for them (`request_push`).
    Returns their ids."""
    ids = copy_rows(Notification, NOTIFICATION_ROW, [_row(event, now) for event in events])
    if ids:
        transaction.on_commit(request_push)
    return ids


def notify(
    *, agency_id: int, kind: NotificationKind, title: str, body: str, data: dict, now: datetime, dedupe_key: str = ""
) -> Notification | None:
    """Creates one inbox entry; once the caller's transaction commits, a push run is on its
    way for it (`request_push`).

    With a `dedupe_key`, an event notifies once (a reminder sent twice is one row); the
    second call returns None.
    """
    fields = dict(zip(NOTIFICATION_ROW, _row({"agency_id": agency_id, "kind": kind, "title": title, "body": body,
                                               "data": data}, now), strict=True))  # fmt: skip
    if dedupe_key:
        notification, created = Notification.objects.get_or_create(
            agency_id=agency_id, dedupe_key=dedupe_key, defaults=fields
        )
        if not created:
            return None
    else:
        notification = Notification.objects.create(**fields)
    transaction.on_commit(request_push)
    return notification


# Notifications per batch (one claim, one write per kind of outcome): a run with real FCM
# round trips (~0.1 s each) stays well inside its time limit.
PUSH_BATCH_SIZE = 100
# Set while a push run is queued and has not started: what commits meanwhile is its.
PUSH_QUEUED_KEY = "agencies:push-queued"
# Longer than any wait for a queued run; a flag whose run was lost expires after it.
PUSH_QUEUED_SECONDS = 60


def _push_task():
    from .tasks import push_notifications  # the task module imports this one

    return push_notifications


def request_push() -> None:
    """Makes sure a push run will take the notifications committed so far: queues one to
    start PUSH_DELAY_SECONDS from now, unless one is queued and has not started yet (it
    takes every owed push when it starts). So the notifications of many transactions (each
    distribution run's, each offer's) go out in one task rather than one task each.
    Failures are logged, never raised: the sweeper queues a run for what an outage left."""
    try:
        flagged = cache.add(PUSH_QUEUED_KEY, True, PUSH_QUEUED_SECONDS)
        if not flagged:
            return
    except Exception:
        logger.warning("push flag unavailable; queueing a run", exc_info=True)
        flagged = False
    if not try_enqueue(_push_task(), countdown=settings.PUSH_DELAY_SECONDS, requested=True) and flagged:
        with contextlib.suppress(Exception):
            cache.delete(PUSH_QUEUED_KEY)  # the next notification queues a run again


def retry_delay(attempt: int) -> timedelta:
    """Exponential backoff with a cap: 5 s after the first attempt, then 10 s, 20 s ... 10 minutes."""
    return timedelta(seconds=min(600, 5 * 2 ** (attempt - 1)))


class Claimed(NamedTuple):
    """A notification claimed for one push attempt: what sending it and recording the
    outcome need, as the claim returned it."""

    id: int
    agency_id: int
    kind: str
    title: str
    body: str
    data: str  # JSON text: decoded only for a notification that has devices to go to
    attempts: int  # this attempt's number


def _claim(now: datetime) -> list[Claimed]:
    """Moves up to PUSH_BATCH_SIZE owed notifications (pending, and due if retried), oldest
    first, to `sending` for this attempt, in one statement (no transaction around it: it is
    atomic on its own). Those another run is claiming right now are skipped (SKIP LOCKED),
    not waited for. Returns plain rows, in the order the notifications were made."""
    # Oldest first through notification_unsettled_idx (pushed_at IS NULL).
    owed = (
        Notification.objects.filter(pushed_at__isnull=True, push_status=PushStatus.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .order_by("created_at")
    )
    owed_sql, params = owed.values("pk")[:PUSH_BATCH_SIZE].query.sql_with_params()
    if connection.features.has_select_for_update_skip_locked:
        # Django compiles FOR UPDATE only inside a transaction, which this statement needs not.
        owed_sql += " FOR UPDATE SKIP LOCKED"
    table = connection.ops.quote_name(Notification._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET push_status = %s, push_attempts = push_attempts + 1, claimed_at = %s"
            f" WHERE id IN ({owed_sql})"
            " RETURNING id, agency_id, kind, title, body, data, push_attempts",
            [PushStatus.SENDING, now, *params],
        )
        return sorted(map(Claimed._make, cursor.fetchall()))


@dataclass
class PushResults:
    statuses: dict[int, PushStatus] = field(default_factory=dict)  # by notification id, for those claimed
    retry_after: dict[int, timedelta] = field(default_factory=dict)  # the transient failures to retry


def push_owed_notifications(*, now: datetime, requested: bool = False) -> PushResults:
    """Sends each owed notification to its agency's active devices, once, PUSH_BATCH_SIZE at
    a time; a full batch first queues another run, so the next batch goes out in parallel
    on another worker process (in-process tasks take the batches in turn). The run that
    `request_push` queued (`requested`) first clears its flag: what commits from then on
    queues the next; other runs (the next batch's, a retry's, the sweeper's) leave a queued
    run's flag alone.

    A status guard makes a second run over the same notification a no-op, and every outcome
    is written only by the attempt that claimed it. Unregistered tokens are deactivated. A
    transient FCM error puts the notification back to pending with the time of its next
    attempt (in `retry_after`, for the task to come back then); after PUSH_MAX_ATTEMPTS
    attempts it is marked failed. Per batch: the claim, the devices, one write per kind of
    outcome; no transaction.
    """
    if requested:
        try:
            cache.delete(PUSH_QUEUED_KEY)
        except Exception:
            logger.warning("push flag unavailable", exc_info=True)
    task = _push_task()
    in_process = task.app.conf.task_always_eager
    results = PushResults()
    while True:
        claimed = _claim(now)
        full = len(claimed) == PUSH_BATCH_SIZE
        if full and not in_process:
            try_enqueue(task)  # the next batch, in parallel on another worker process
        _push(claimed, now, results)
        if not full or not in_process:
            return results


def _push(claimed: list[Claimed], now: datetime, results: PushResults) -> None:
    """Sends a claimed batch and writes its outcomes (into `results` too)."""
    if not claimed:
        return
    tokens = defaultdict(list)
    devices = Device.objects.filter(agency_id__any=list({n.agency_id for n in claimed}), is_active=True)
    for agency_id, token in devices.values_list("agency_id", "token"):
        tokens[agency_id].append(token)
    outcomes, invalid_tokens = [], []
    for notification in claimed:
        status, error = _send(notification, tokens[notification.agency_id], invalid_tokens)
        if status == PushStatus.PENDING:
            if notification.attempts >= settings.PUSH_MAX_ATTEMPTS:
                status = PushStatus.FAILED
            else:
                results.retry_after[notification.id] = retry_delay(notification.attempts)
        results.statuses[notification.id] = status
        outcomes.append((notification, status, error))
    # Each write stands on its own (outcomes are guarded by the attempt that claimed them):
    # no transaction, so usually one statement.
    if invalid_tokens:
        Device.objects.filter(token__in=invalid_tokens).update(
            is_active=False, deactivated_at=now, deactivation_reason="FCM: unregistered or invalid token"
        )
    _record(outcomes, now)


def _send(notification: Claimed, tokens: list[str], invalid_tokens: list[str]) -> tuple[PushStatus, str]:
    """One notification through the push backend: its outcome and error (PENDING: transient)."""
    if not tokens:
        return PushStatus.NO_DEVICES, ""
    message = PushMessage(
        title=notification.title,
        body=notification.body,
        data={**json.loads(notification.data), "kind": notification.kind, "notification_id": str(notification.id)},
    )
    try:
        outcome = get_backend().send(tokens, message)
    except Exception as exc:  # network or auth trouble talking to FCM
        return PushStatus.PENDING, f"{type(exc).__name__}: {exc}"[:500]
    invalid_tokens += outcome.invalid_tokens
    if outcome.rejected_error and not outcome.delivered:
        return PushStatus.FAILED, outcome.rejected_error
    if outcome.transient_error and not outcome.delivered:
        return PushStatus.PENDING, outcome.transient_error
    return (PushStatus.SENT if outcome.delivered else PushStatus.NO_DEVICES), outcome.transient_error


def _record(outcomes: list[tuple[Claimed, PushStatus, str]], now: datetime) -> None:
    """Writes each outcome, grouped into one UPDATE per kind; an attempt whose notification
    was claimed again since (a newer attempt) writes nothing."""
    groups = defaultdict(list)
    for notification, status, error in outcomes:
        groups[(status, error, notification.attempts)].append(notification.id)
    for (status, error, attempts), ids in groups.items():
        this_attempt = Notification.objects.filter(pk__any=ids, push_status=PushStatus.SENDING, push_attempts=attempts)
        if status == PushStatus.PENDING:
            this_attempt.update(push_status=status, push_error=error, next_attempt_at=now + retry_delay(attempts))
        else:
            this_attempt.update(push_status=status, pushed_at=now, push_error=error)


def sweep_unpushed_notifications(*, now: datetime, older_than: timedelta = timedelta(minutes=1)) -> int:
    """Queues a push run for pushes that lost theirs: never queued (the broker was down), a
    retry whose run did not come (its message was lost), or a worker that died while
    sending (claimed longer ago than any attempt can take; put back to pending first).
    Returns how many it found (at most 1,000 of each kind)."""
    unsettled = Notification.objects.filter(pushed_at__isnull=True)  # through notification_unsettled_idx
    with transaction.atomic():
        stuck = unsettled.select_for_update(skip_locked=True).filter(
            push_status=PushStatus.SENDING, claimed_at__lt=now - STUCK_SENDING_AFTER
        )
        stuck_ids = list(stuck.values_list("pk", flat=True)[:1000])
        Notification.objects.filter(pk__in=stuck_ids).update(push_status=PushStatus.PENDING)
        lost = unsettled.filter(push_status=PushStatus.PENDING).filter(
            Q(next_attempt_at__isnull=True, created_at__lt=now - older_than) | Q(next_attempt_at__lt=now - RETRY_GRACE)
        )
        found = {*stuck_ids, *lost.values_list("pk", flat=True)[:1000]}
        if found:
            enqueue_on_commit(_push_task())
    return len(found)


def mark_read(*, agency: Agency, notification_id: int, now: datetime) -> Notification:
    """Marks one of the agency's notifications read. Raises NotFound for another agency's."""
    notification = Notification.objects.for_agency(agency).filter(pk=notification_id).first()
    if notification is None:
        raise NotFound("No such notification.")
    if notification.read_at is None:
        notification.read_at = now
        notification.save(update_fields=["read_at"])
    return notification


def mark_all_read(*, agency: Agency, now: datetime) -> int:
    """Marks every unread notification of the agency read; returns how many changed."""
    return Notification.objects.for_agency(agency).unread().update(read_at=now)
