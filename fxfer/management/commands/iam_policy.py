import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from fxfer import iam


class Command(BaseCommand):
    help = (
        "Print the IAM policy of the stage's Lambda role as JSON (fxfer/iam.py): only what the code calls, on the "
        "stage's own tables, bucket prefix, KMS key, SES sender and queue; --trust prints the role's trust "
        "policy. docs/deploy.md step 4 creates the role with both; zappa_settings.json names it (role_arn, "
        "manage_roles false). Reads zappa_settings.json; makes no AWS call."
    )

    def add_arguments(self, parser):
        parser.add_argument("--stage", required=True, help="the Zappa stage: dev, prod")
        parser.add_argument("--account", required=True, help="the 12-digit AWS account id")
        parser.add_argument("--region", default=None, help="default: FXFER_AWS_REGION / AWS_REGION")
        parser.add_argument(
            "--from-address", default=None, help="the sender (FXFER_FROM_EMAIL of the stage); default: this process's"
        )
        parser.add_argument("--trust", action="store_true", help="print the role's trust policy instead")

    def handle(self, *args, stage, account, region, from_address, trust, **options):
        region = region or settings.FXFER_AWS_REGION
        if trust:
            if not account.isdigit() or len(account) != 12:
                raise CommandError(f"an AWS account id has 12 digits, not {account!r}")
            document = iam.lambda_trust_policy(account_id=account, region=region)
        else:
            try:
                document = iam.lambda_policy(
                    stage=stage,
                    account_id=account,
                    region=region,
                    from_address=from_address,
                )
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
            if iam.size(document) > iam.INLINE_POLICY_LIMIT:
                raise CommandError(f"the policy has {iam.size(document)} characters, over IAM's inline quota")
        self.stdout.write(json.dumps(document, indent=2, ensure_ascii=False))
