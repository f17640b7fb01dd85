from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from leads import distribution
from portals.models import Portal


class Command(BaseCommand):
    help = "Re-offers leads whose offer expired and retries unassigned leads. Safe to run at any time."

    def add_arguments(self, parser):
        parser.add_argument("--zip", dest="zipcode", help="Only leads of this ZIP code.")
        parser.add_argument("--portal", help="Only leads from this portal (its code).")
        parser.add_argument("--since", help="Only leads received since this ISO 8601 time.")
        parser.add_argument("--limit", type=int, help="At most this many leads of each kind.")
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be redistributed.")

    def handle(self, *args, zipcode, portal, since, limit, dry_run, **options):
        now = timezone.now()
        portal_id = None
        if portal:
            portal_id = Portal.objects.filter(code=portal).values_list("id", flat=True).first()
            if portal_id is None:
                raise CommandError(f"Unknown portal {portal!r}.")
        since_at = parse_datetime(since) if since else None
        if since and since_at is None:
            raise CommandError(f"--since {since!r} is not an ISO 8601 time.")
        if dry_run:
            counts = distribution.count_redistributable(now=now, zipcode=zipcode, portal_id=portal_id, since=since_at)
            self.stdout.write(
                f"Would re-offer {counts['overdue_offers']} lead(s) with an expired offer and retry "
                f"{counts['unassigned']} unassigned lead(s)."
            )
            return

        def progress(summary):
            self.stderr.write(
                f"\r  expired {summary.expired}  examined {summary.examined}  "
                f"offered {summary.offered}  still unassigned {summary.unassigned}",
                ending="",
            )

        summary = distribution.redistribute_leads(
            now=now, zipcode=zipcode, portal_id=portal_id, since=since_at, limit=limit, progress=progress
        )
        self.stderr.write("")
        self.stdout.write(
            self.style.SUCCESS(
                f"Expired {summary.expired} offer(s); examined {summary.examined} unassigned lead(s); "
                f"made {summary.offered} offer(s); {summary.unassigned} lead(s) still unassigned."
            )
        )
