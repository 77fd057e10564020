from datetime import date, timedelta

from django.core.management.base import BaseCommand, CommandError

from reports.services import daily_stats_rebuild


class Command(BaseCommand):
    help = "Rebuild the daily statistics of a range of local days (backfill). Idempotent: safe to run again."

    def add_arguments(self, parser):
        parser.add_argument("first", type=date.fromisoformat, help="first local day, YYYY-MM-DD")
        parser.add_argument("last", type=date.fromisoformat, nargs="?", help="last local day (default: first)")

    def handle(self, *args, first: date, last: date | None, **options):
        last = last or first
        if last < first:
            raise CommandError(f"The last day ({last}) is before the first ({first}).")
        if (last - first).days > 366:
            raise CommandError("Backfill at most 367 days at a time.")
        day = first
        while day <= last:
            built = daily_stats_rebuild(day=day)
            self.stdout.write(f"{day.isoformat()}  {built.events_read} events")
            day += timedelta(days=1)
