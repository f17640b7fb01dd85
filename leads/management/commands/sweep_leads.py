from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from leads.services import sweep_pending_leads


class Command(BaseCommand):
    help = "Hands off leads that were stored but never handed to distribution (broker or worker outage)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=int,
            default=settings.LEAD_HANDOFF_SWEEP_AFTER_SECONDS,
            help="Seconds a lead must have waited (default: LEAD_HANDOFF_SWEEP_AFTER_SECONDS).",
        )
        parser.add_argument("--inline", action="store_true", help="Distribute in this process instead of queueing.")

    def handle(self, *args, older_than: int, inline: bool, **options):
        handed = sweep_pending_leads(now=timezone.now(), older_than=timedelta(seconds=older_than), inline=inline)
        self.stdout.write(f"Handed off {len(handed)} pending lead(s).")
