from django.core.management.base import BaseCommand

from fxfer.provisioning import UNCHANGED, provision


class Command(BaseCommand):
    help = "Create or converge the DynamoDB tables, KMS key, S3 bucket and SES sender. Safe to run again."

    def handle(self, *args, **options):
        changed = 0
        for step in provision():
            changed += step.action != UNCHANGED
            detail = f"  ({step.detail})" if step.detail else ""
            self.stdout.write(f"{step.action:<12} {step.resource}{detail}")
        self.stdout.write(self.style.SUCCESS(f"Provisioned: {changed} change(s)."))
