"""Notification services: devices, the in-app inbox, and pushing each notification once."""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from leadmarket.bulk import copy_create
from leadmarket.celery import enqueue_on_commit
from leadmarket.errors import NotFound

from .models import Agency, Device, DevicePlatform, Notification, NotificationKind, PushStatus
from .push import PushMessage, get_backend

logger = logging.getLogger(__name__)

# Longer than a push task may run (its hard time limit is 90 s).
STUCK_SENDING_AFTER = timedelta(minutes=2)
# How late a scheduled retry may be before the sweeper takes it as lost.
RETRY_GRACE = timedelta(minutes=2)


class TransientPushError(Exception):
    """FCM could not take the message now; retry after `delay`."""

    def __init__(self, message: str, delay: timedelta):
        super().__init__(message)
        self.delay = delay


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


def notify_many(events: list[dict], *, now: datetime) -> list[Notification]:
    """Creates one inbox entry per event ({agency_id, kind, title, body, data}) and pushes
    them all with one task after the caller's transaction commits."""
    notifications = copy_create(
        [
            Notification(
                agency_id=event["agency_id"],
                kind=event["kind"],
                title=event["title"],
                body=event["body"],
                data={key: str(value) for key, value in event["data"].items()},
                created_at=now,
            )
            for event in events
        ]
    )
    if notifications:
        _push_after_commit([notification.pk for notification in notifications])
    return notifications


def notify(
    *, agency_id: int, kind: NotificationKind, title: str, body: str, data: dict, now: datetime, dedupe_key: str = ""
) -> Notification | None:
    """Creates one inbox entry and pushes it after the caller's transaction commits.

    With a `dedupe_key`, an event notifies once (a reminder sent twice is one row); the
    second call returns None.
    """
    event = {"agency_id": agency_id, "kind": kind, "title": title, "body": body, "data": data}
    if not dedupe_key:
        return notify_many([event], now=now)[0]
    notification, created = Notification.objects.get_or_create(
        agency_id=agency_id,
        dedupe_key=dedupe_key,
        defaults={
            "kind": kind,
            "title": title,
            "body": body,
            "created_at": now,
            "data": {key: str(value) for key, value in data.items()},
        },
    )
    if not created:
        return None
    _push_after_commit([notification.pk])
    return notification


def _push_after_commit(notification_ids: list[int]) -> None:
    from .tasks import push_notifications

    enqueue_on_commit(push_notifications, notification_ids=notification_ids)


def retry_delay(attempt: int) -> timedelta:
    """Exponential backoff with a cap: 5 s after the first attempt, then 10 s, 20 s ... 10 minutes."""
    return timedelta(seconds=min(600, 5 * 2 ** (attempt - 1)))


def _claim(notification_id: int, now: datetime) -> Notification | None:
    """Moves a pending notification to `sending` for this attempt; None when it is not
    pending (pushed already, or another delivery of the task has it)."""
    with transaction.atomic():
        notification = Notification.objects.select_for_update().filter(pk=notification_id).first()
        if notification is None or notification.push_status != PushStatus.PENDING:
            return None
        notification.push_status = PushStatus.SENDING
        notification.push_attempts += 1
        notification.claimed_at = now
        notification.save(update_fields=["push_status", "push_attempts", "claimed_at"])
        return notification


def push_notification(*, notification_id: int, now: datetime) -> PushStatus | None:
    """Sends the notification to the agency's active devices, once.

    A status guard makes a second delivery of the same task a no-op, and every outcome is
    written only by the attempt that claimed it. Unregistered tokens are deactivated. A
    transient FCM error puts the notification back to pending with the time of its next
    attempt and raises TransientPushError (the task retries then); after PUSH_MAX_ATTEMPTS
    attempts it is marked failed.
    """
    notification = _claim(notification_id, now)
    if notification is None:
        return None
    tokens = list(
        Device.objects.filter(agency_id=notification.agency_id, is_active=True).values_list("token", flat=True)
    )
    if not tokens:
        return _finish(notification, PushStatus.NO_DEVICES, now)
    message = PushMessage(
        title=notification.title,
        body=notification.body,
        data={**notification.data, "kind": notification.kind, "notification_id": str(notification.pk)},
    )
    try:
        outcome = get_backend().send(tokens, message)
    except Exception as exc:  # network or auth trouble talking to FCM
        return _transient(notification, f"{type(exc).__name__}: {exc}"[:500], now)
    if outcome.invalid_tokens:
        Device.objects.filter(token__in=outcome.invalid_tokens).update(
            is_active=False, deactivated_at=now, deactivation_reason="FCM: unregistered or invalid token"
        )
    if outcome.rejected_error and not outcome.delivered:
        return _finish(notification, PushStatus.FAILED, now, error=outcome.rejected_error)
    if outcome.transient_error and not outcome.delivered:
        return _transient(notification, outcome.transient_error, now)
    status = PushStatus.SENT if outcome.delivered else PushStatus.NO_DEVICES
    return _finish(notification, status, now, error=outcome.transient_error)


def _this_attempt(notification: Notification):
    return Notification.objects.filter(
        pk=notification.pk, push_status=PushStatus.SENDING, push_attempts=notification.push_attempts
    )


def _finish(notification: Notification, status: PushStatus, now: datetime, error: str = "") -> PushStatus:
    _this_attempt(notification).update(push_status=status, pushed_at=now, push_error=error)
    return status


def _transient(notification: Notification, error: str, now: datetime) -> PushStatus:
    if notification.push_attempts >= settings.PUSH_MAX_ATTEMPTS:
        return _finish(notification, PushStatus.FAILED, now, error=error)
    delay = retry_delay(notification.push_attempts)
    _this_attempt(notification).update(push_status=PushStatus.PENDING, push_error=error, next_attempt_at=now + delay)
    raise TransientPushError(error, delay)


def sweep_unpushed_notifications(*, now: datetime, older_than: timedelta = timedelta(minutes=1)) -> int:
    """Re-enqueues pushes that lost their task: never enqueued (the broker was down), a retry
    that did not come (its message was lost), or a worker that died while sending (claimed
    longer ago than any attempt can take). Returns how many were re-enqueued."""
    with transaction.atomic():
        stuck = Notification.objects.select_for_update(skip_locked=True).filter(
            push_status=PushStatus.SENDING, claimed_at__lt=now - STUCK_SENDING_AFTER
        )
        stuck_ids = list(stuck.values_list("pk", flat=True)[:1000])
        Notification.objects.filter(pk__in=stuck_ids).update(push_status=PushStatus.PENDING)
        lost_ids = list(
            Notification.objects.filter(push_status=PushStatus.PENDING)
            .filter(
                Q(push_attempts=0, created_at__lt=now - older_than)
                | Q(push_attempts__gt=0, next_attempt_at__lt=now - RETRY_GRACE)
            )
            .order_by("created_at", "id")
            .values_list("pk", flat=True)[:1000]
        )
        ids = list(dict.fromkeys(stuck_ids + lost_ids))
        if ids:
            _push_after_commit(ids)
    return len(ids)


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
