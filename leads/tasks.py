from celery import shared_task
from django.conf import settings
from django.utils import timezone

from . import distribution, services


@shared_task(
    name="leads.tasks.distribute_new_leads",
    acks_late=True,
    soft_time_limit=240,
    time_limit=300,
    autoretry_for=(Exception,),
    retry_backoff=True,
    max_retries=5,
)
def distribute_new_leads(*, follow_up: bool = False) -> int:
    """Queued after webhooks (`services.request_distribution`) and run periodically by beat;
    a run clears the flag and queues its `follow_up` pass (`services.distribution_started`),
    which distributes like a run but leaves the flag alone and queues nothing."""
    if not follow_up:
        services.distribution_started()
    return distribution.distribute_new_leads()


@shared_task(name="leads.tasks.redistribute_leads", soft_time_limit=240, time_limit=300)
def redistribute_leads(*, zipcodes: list[str] | None = None, partition: list[int] | None = None) -> dict:
    """Every minute for all ZIP codes; at once for the ZIP codes whose eligibility changed.

    The minute's run queues one run per part of the ZIP codes (REDISTRIBUTION_PARTITIONS,
    see `distribution.zip_part`), which worker processes take side by side: one process
    redistributes a backlog at the speed of one core, and the parts share no rotation cursor
    (batches reaching the same capped subscription still wait for each other: README,
    Scaling out)."""
    parts = settings.REDISTRIBUTION_PARTITIONS
    if zipcodes is None and partition is None and parts > 1:
        for part in range(parts):
            redistribute_leads.delay(partition=[part, parts])
        return {"partitions": parts}
    now = timezone.now()
    summaries = [
        distribution.redistribute_leads(now=now, zipcode=zipcode, partition=partition) for zipcode in zipcodes or [None]
    ]
    return {"offered": sum(s.offered for s in summaries), "expired": sum(s.expired for s in summaries)}


@shared_task(name="leads.tasks.remind_expiring_offers", soft_time_limit=50, time_limit=60)
def remind_expiring_offers() -> int:
    return distribution.remind_expiring_offers(now=timezone.now())
