from django.core.management.base import BaseCommand

from leads.distribution import distribute_new_leads


class Command(BaseCommand):
    help = "Distributes, in this process, the leads still waiting to be (after a broker or worker outage)."

    def handle(self, *args, **options):
        distributed = distribute_new_leads()
        self.stdout.write(f"Distributed {distributed} waiting lead(s).")
