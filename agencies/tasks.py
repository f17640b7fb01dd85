from celery import shared_task
from django.utils import timezone

from leadmarket.celery import try_enqueue

from . import notifications

# A run queued for a retry starts this much after the retry is due: a worker whose clock is a
# little behind the one that scheduled it still finds the notification due.
RETRY_CLOCK_MARGIN_SECONDS = 1.0


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def push_notifications(notification_ids: list[int] | None = None, requested: bool = False) -> int:
    """A push run (see notifications.push_owed_notifications). A run comes back for each
    retry time of the pushes FCM could not take now (a run takes only what is due; at most
    PUSH_MAX_ATTEMPTS times). `notification_ids`: what tasks queued before push runs
    carried; those notifications are owed like any other."""
    results = notifications.push_owed_notifications(now=timezone.now(), requested=requested)
    for delay in sorted(set(results.retry_after.values())):
        try_enqueue(push_notifications, countdown=delay.total_seconds() + RETRY_CLOCK_MARGIN_SECONDS)
    return len(results.statuses)


@shared_task(soft_time_limit=60, time_limit=90)
def sweep_unpushed_notifications() -> int:
    return notifications.sweep_unpushed_notifications(now=timezone.now())
