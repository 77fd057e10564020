from django.core.management.base import BaseCommand

from transfers.services.quota import quota_backfill


class Command(BaseCommand):
    help = (
        "Charge each sender's quota for their transfers made before quotas existed whose files are still kept. "
        "Run once after deploying quotas; safe to run again."
    )

    def handle(self, *args, **options):
        done = quota_backfill()
        self.stdout.write(f"{done.charged} transfers charged, {done.skipped} skipped")
