from celery import shared_task
from django.conf import settings
from django.utils import timezone

from . import notifications


@shared_task(bind=True, acks_late=True, soft_time_limit=30, time_limit=45)
def push_notification(self, *, notification_id: int) -> str | None:
    final_attempt = self.request.retries >= settings.PUSH_MAX_RETRIES
    try:
        status = notifications.push_notification(
            notification_id=notification_id, now=timezone.now(), final_attempt=final_attempt
        )
    except notifications.TransientPushError as exc:
        # Exponential backoff with a cap: 5 s, 10 s, 20 s ... at most 10 minutes.
        raise self.retry(exc=exc, countdown=min(600, 5 * 2**self.request.retries)) from exc
    return status


@shared_task(soft_time_limit=60, time_limit=90)
def sweep_unpushed_notifications() -> int:
    return notifications.sweep_unpushed_notifications(now=timezone.now())
