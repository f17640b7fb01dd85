from celery import shared_task
from django.utils import timezone

from . import notifications


# Retries are bounded by PUSH_MAX_ATTEMPTS on each notification row, not by Celery's count.
@shared_task(bind=True, acks_late=True, soft_time_limit=60, time_limit=90, max_retries=None)
def push_notifications(self, *, notification_ids: list[int]) -> int:
    """Pushes each notification once; the ones FCM could not take now are retried after their backoff."""
    retry_ids, delay = [], None
    for notification_id in notification_ids:
        try:
            notifications.push_notification(notification_id=notification_id, now=timezone.now())
        except notifications.TransientPushError as exc:
            retry_ids.append(notification_id)
            delay = min(delay or exc.delay, exc.delay)
    if retry_ids:
        raise self.retry(kwargs={"notification_ids": retry_ids}, countdown=delay.total_seconds())
    return len(notification_ids)


@shared_task(soft_time_limit=60, time_limit=90)
def sweep_unpushed_notifications() -> int:
    return notifications.sweep_unpushed_notifications(now=timezone.now())
