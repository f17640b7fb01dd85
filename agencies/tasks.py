from celery import shared_task
from django.utils import timezone

from leadmarket.celery import try_enqueue

from . import notifications


# Retries are bounded by PUSH_MAX_ATTEMPTS on each notification row, not by Celery's count.
@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def push_notifications(notification_ids: list[int] | None = None) -> int:
    """A push run: pushes every owed notification once, and comes back when the first of
    those FCM could not take now is due again. (`notification_ids`: what tasks queued
    before push runs carried; they are owed like any other.)"""
    results = notifications.push_owed_notifications(now=timezone.now())
    if results.retry_after:
        try_enqueue(push_notifications, countdown=min(results.retry_after.values()).total_seconds())
    return len(results.statuses)


@shared_task(soft_time_limit=60, time_limit=90)
def sweep_unpushed_notifications() -> int:
    return notifications.sweep_unpushed_notifications(now=timezone.now())
