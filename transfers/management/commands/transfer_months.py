from django.core.management.base import BaseCommand

from transfers.services.months import transfer_months_backfill


class Command(BaseCommand):
    help = (
        "Give transfers made before the by-month index existed their month, so the compliance admin's date "
        "ranges find them. Run once after the upgrade's provision; safe to run again."
    )

    def handle(self, *args, **options):
        done = transfer_months_backfill()
        self.stdout.write(f"{done.updated} transfers updated, {done.already} already had their month")
