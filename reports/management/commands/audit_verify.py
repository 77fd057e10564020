from django.core.management.base import BaseCommand, CommandError

from reports.chain import audit_chain_verify


class Command(BaseCommand):
    help = (
        "Verify the audit trail's hash chain from the oldest event present (or --from) to the chain head, and "
        "report the first break: an altered, removed or inserted event, or a head mismatch. Exit status 1 on a break."
    )

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="from_seq", type=int, help="start at this seq")

    def handle(self, *args, from_seq: int | None, **options):
        result = audit_chain_verify(from_seq=from_seq)
        if result.starts_after_retention:
            self.stdout.write(
                f"Events before {result.first_seq} are no longer present (audit retention); "
                f"the oldest checked is from {result.oldest_at:%Y-%m-%d %H:%M} UTC."
            )
        if result.ok:
            self.stdout.write(
                f"OK: events {result.first_seq}..{result.last_seq} intact ({result.events_checked} checked), "
                f"chain head {result.head_seq}."
            )
            return
        found = result.first_break
        where = f"event {found.seq}" if found.seq else f"event id {found.event_id}"
        raise CommandError(
            f"BROKEN at {where}: {found.kind}. {found.explanation} "
            f"({result.events_checked} events before it intact, from {result.first_seq}.)",
            returncode=1,
        )
