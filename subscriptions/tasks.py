from dataclasses import asdict

from celery import shared_task
from django.utils import timezone

from . import services


# Its own limits: a run settles subscriptions one transaction at a time, so one that is
# cut short keeps what it did and the next run carries on.
@shared_task(name="subscriptions.renew_subscriptions", soft_time_limit=10 * 60, time_limit=11 * 60)
def renew_subscriptions() -> dict:
    """Renews or expires every subscription whose period has ended (idempotent; runs from beat)."""
    return asdict(services.renew_subscriptions(now=timezone.now()))
