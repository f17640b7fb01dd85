from celery import shared_task
from django.conf import settings
from django.utils import timezone

from . import notifications


@shared_task(bind=True, acks_late=True, soft_time_limit=60, time_limit=90)
def push_notifications(self, *, notification_ids: list[int]) -> int:
    """Pushes each notification once; the ones FCM could not take now are retried."""
    final_attempt = self.request.retries >= settings.PUSH_MAX_RETRIES
    retry_ids = []
    for notification_id in notification_ids:
        try:
            notifications.push_notification(
                notification_id=notification_id, now=timezone.now(), final_attempt=final_attempt
            )
        except notifications.TransientPushError:
            retry_ids.append(notification_id)
    if retry_ids:
        # Exponential backoff with a cap: 5 s, 10 s, 20 s ... at most 10 minutes.
        raise self.retry(kwargs={"notification_ids": retry_ids}, countdown=min(600, 5 * 2**self.request.retries))
    return len(notification_ids)


@shared_task(soft_time_limit=60, time_limit=90)
def sweep_unpushed_notifications() -> int:
    return notifications.sweep_unpushed_notifications(now=timezone.now())
