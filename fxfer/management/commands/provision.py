from django.core.management.base import BaseCommand

from fxfer.provisioning import ACTION_NEEDED, CREATED, UNSUPPORTED, UPDATED, provision


class Command(BaseCommand):
    help = (
        "Create or converge every AWS resource of this stage that Zappa does not create: the DynamoDB tables "
        "(TTL, point-in-time recovery), the KMS key, the S3 bucket (Object Lock, Block Public Access, policy, "
        "CORS, lifecycle), the SES configuration set and its SNS topic, and the failed-events queue. Safe to run "
        "again: it changes only what differs. Against AWS: DJANGO_SETTINGS_MODULE=fxfer.settings.production with "
        "the stage's environment loaded, AWS_PROFILE and AWS_REGION set, no FXFER_*_ENDPOINT set (docs/deploy.md)."
    )

    def handle(self, *args, **options):
        changed, for_you = 0, []
        for step in provision():
            changed += step.action in {CREATED, UPDATED}
            if step.action in {ACTION_NEEDED, UNSUPPORTED}:
                for_you.append(step)
            detail = f"  ({step.detail})" if step.detail else ""
            self.stdout.write(f"{step.action:<12} {step.resource}{detail}")
        self.stdout.write(self.style.SUCCESS(f"Provisioned: {changed} change(s)."))
        # "unsupported" and "action needed" are not changes: they are what the operator still has to do (verify
        # the SES domain, put an ARN into zappa_settings.json, deploy and run provision again).
        if for_you:
            self.stdout.write(self.style.WARNING(f"{len(for_you)} step(s) left to you:"))
            for step in for_you:
                self.stdout.write(self.style.WARNING(f"  {step.resource}: {step.detail or step.action}"))
