from django.core.management.base import BaseCommand
from django.utils import timezone

from leads import distribution


class Command(BaseCommand):
    help = "Expires offers past their deadline and offers those leads to the next eligible agency."

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, help="At most this many offers.")

    def handle(self, *args, limit, **options):
        summary = distribution.expire_offers(now=timezone.now(), limit=limit)
        self.stdout.write(
            self.style.SUCCESS(
                f"Expired {summary.expired} offer(s); made {summary.offered} new offer(s); "
                f"{summary.unassigned} lead(s) unassigned."
            )
        )
