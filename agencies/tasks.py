from celery import shared_task
from django.utils import timezone

from . import notifications


# Retries are bounded by PUSH_MAX_ATTEMPTS on each notification row, not by Celery's count.
@shared_task(bind=True, acks_late=True, soft_time_limit=60, time_limit=90, max_retries=None)
def push_notifications(self, *, notification_ids: list[int]) -> int:
    """Pushes each notification once; the ones FCM could not take now are retried after their backoff."""
    results = notifications.push_notifications(notification_ids=notification_ids, now=timezone.now())
    if results.retry_after:
        countdown = min(results.retry_after.values()).total_seconds()
        raise self.retry(kwargs={"notification_ids": sorted(results.retry_after)}, countdown=countdown)
    return len(notification_ids)


@shared_task(soft_time_limit=60, time_limit=90)
def sweep_unpushed_notifications() -> int:
    return notifications.sweep_unpushed_notifications(now=timezone.now())
