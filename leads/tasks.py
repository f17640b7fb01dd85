from celery import shared_task
from django.conf import settings
from django.utils import timezone

from . import services


@shared_task(
    name="leads.tasks.distribute_lead",
    acks_late=True,
    soft_time_limit=30,
    time_limit=60,
    autoretry_for=(Exception,),
    retry_backoff=True,
    max_retries=5,
)
def distribute_lead(*, lead_id: int) -> None:
    services.distribute_lead(lead_id=lead_id, now=timezone.now())


@shared_task(name="leads.tasks.sweep_pending_leads", soft_time_limit=50, time_limit=60)
def sweep_pending_leads() -> int:
    from datetime import timedelta

    handed = services.sweep_pending_leads(
        now=timezone.now(), older_than=timedelta(seconds=settings.LEAD_HANDOFF_SWEEP_AFTER_SECONDS)
    )
    return len(handed)
