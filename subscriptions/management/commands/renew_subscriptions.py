from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from subscriptions import services


class Command(BaseCommand):
    help = (
        "Renews live subscriptions whose period has ended (charging the new period) and expires those "
        "cancelled at period end. Idempotent; safe to run beside Celery beat and another copy."
    )

    def handle(self, *args, **options):
        summary = services.renew_subscriptions(now=timezone.now())
        self.stdout.write(f"Renewed {summary.renewed}, expired {summary.expired}, failed {summary.failed}.")
        if summary.failed:
            raise CommandError(f"{summary.failed} subscription(s) failed; see the log. The next run retries them.")
