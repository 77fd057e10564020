"""The Lambda role's IAM policy, as code: what the deployed function may do in AWS, and nothing else.

`manage.py iam_policy --stage prod --account 123456789012` prints it (deploy/iam/ has a rendered example). Names
come from where the application gets them: table names and indexes from the PynamoDB models (fxfer.dynamo), the
SES configuration set, the failed-events queue and the function's name from `stage_resources` in
fxfer/settings/base.py, the bucket, the KMS key and the secrets' SSM path from zappa_settings.json (or their
defaults), the sender from FXFER_FROM_EMAIL.

Each statement grants what some code calls, and says which (its Sid, and the comment beside it). The fast tier
keeps this honest both ways (tests/awscalls.py): every AWS call the application makes in the suite must be allowed
here, and every grant here must be used by some call, or be listed there with the reason the suite cannot make it.
Operator-only work (`manage.py provision`: creating tables, the bucket, the key, alarms) is not the role's: the
operator runs it with their own credentials.
"""

import json
import re

POLICY_VERSION = "2012-10-17"
# The role's inline policies together may hold 10,240 characters (whitespace not counted): IAM's quota.
INLINE_POLICY_LIMIT = 10_240

# What the application does to each table (its short name, as in `dynamo.meta(...)`): exactly the calls the code
# makes. A transaction's Put, Update, Delete and ConditionCheck are authorised as PutItem, UpdateItem, DeleteItem
# and ConditionCheckItem on their table. "Query" covers the table's indexes too where it has any. The audit
# tables (audit-events, audit-links) are append-only for the app: their updates are the separate, narrower
# statements below, and DeleteItem or BatchWriteItem on them is denied outright.
TABLE_ACTIONS: dict[str, tuple[str, ...]] = {
    "approval-delegations": ("dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem"),
    "audit-chain": ("dynamodb:GetItem", "dynamodb:PutItem"),
    "audit-events": ("dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"),
    "audit-links": ("dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem"),
    "daily-stats": (
        "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
    ),
    "files": (
        "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
    ),
    "guest-grants": ("dynamodb:GetItem", "dynamodb:PutItem"),
    "job-runs": ("dynamodb:BatchGetItem", "dynamodb:UpdateItem"),
    "one-time-codes": ("dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem"),
    "outbox": (
        "dynamodb:BatchGetItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
    ),
    "quota-usage": ("dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:UpdateItem"),
    "rate-limits": ("dynamodb:PutItem", "dynamodb:UpdateItem"),
    "recipients": (
        "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
    ),
    "saml-assertions-seen": ("dynamodb:PutItem",),
    "saml-requests": ("dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"),
    "sessions": (
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
    ),
    "sweep-cursors": ("dynamodb:GetItem", "dynamodb:UpdateItem"),
    "transfer-search": ("dynamodb:BatchWriteItem", "dynamodb:DeleteItem", "dynamodb:Query", "dynamodb:UpdateItem"),
    "transfers": (
        "dynamodb:BatchGetItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
    ),
    "users": ("dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"),
}

# The audit trail. The chainer (reports/chain.py) links an event: in its TransactWriteItems it sets the event's
# `seq` and removes `unchained`, on condition of `unchained` and `count`. A counted event (reports.services.
# audit_count: anonymous traffic, refusals, one event per minute) is an UpdateItem that creates or adds to one
# event while it is still unchained. IAM cannot tell "only new items" or "only while unchained" (the code's
# conditions do); what it can say: `seq` (a place in the chain) is written only inside a transaction, and no
# update of an event touches anything but these attributes. A changed event still breaks the hash chain.
AUDIT_CHAINER_ATTRIBUTES = ("event_id", "seq", "unchained", "count")
AUDIT_COUNT_ATTRIBUTES = (
    "event_id",
    "unchained",
    "at",
    "action",
    "outcome",
    "actor",
    "subject",
    "sort_key",
    "day_shard",
    "ip",
    "user_agent",
    "details",
    "count",
    "expires_at",
)
APPEND_ONLY_TABLES = ("audit-events", "audit-links")

# Objects the application touches in the transfer bucket: every file lives under this prefix.
FILES_PREFIX = "files/"
# On objects under files/ (transfers/storage.py). PutObject covers the presigned POST, CreateMultipartUpload, the
# presigned UploadPart URLs and CompleteMultipartUpload; GetObject(Version) the HeadObject checks and the
# presigned GET of the verified version; Delete*Version the deletion of every version with its receipt;
# GetObjectVersionTagging reads GuardDuty's malware-scan verdict tag of the verified version (the bucket is
# versioned: every read names the version).
S3_OBJECT_ACTIONS = (
    "s3:PutObject",
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:DeleteObjectVersion",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
    "s3:PutObjectLegalHold",
    "s3:GetObjectLegalHold",
    "s3:GetObjectVersionTagging",
)
# On the bucket itself: HeadBucket (the health check) is authorised as ListBucket; the sweep lists abandoned
# multipart uploads.
S3_BUCKET_ACTIONS = ("s3:ListBucket", "s3:ListBucketMultipartUploads")


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name) if part)


def stage_names(stage: str) -> dict:
    """The stage's resource names as the application derives them (settings and zappa_settings.json)."""
    from django.conf import settings

    from fxfer.settings.base import stage_resources

    names = stage_resources(stage, lambda_function=f"fxfer-{stage}")
    zappa = _zappa_stage(settings.BASE_DIR / "zappa_settings.json", stage)
    variables = zappa.get("environment_variables", {})
    return {
        "bucket": variables.get("FXFER_BUCKET", f"fxfer-{stage}-transfers"),
        "kms_key": variables.get("FXFER_KMS_KEY_ID", f"alias/fxfer-{stage}"),
        "configuration_set": names["AWS_SES_CONFIGURATION_SET"],
        "failed_events_queue": names["FXFER_FAILED_EVENTS_QUEUE"],
        "function_name": names["FXFER_LAMBDA_FUNCTION"],
        # production.py's FXFER_SSM_PATH default: where the stage's secrets are (fxfer.env.secret).
        "parameter_path": variables.get("FXFER_SSM_PATH", f"/fxfer/{stage}/"),
    }


def _zappa_stage(path, stage: str) -> dict:
    """The stage's settings in zappa_settings.json, its `extends` chain merged in (Zappa's own rule)."""
    if not path.exists():
        return {}
    stages = json.loads(path.read_text())
    merged: dict = {}
    chain = []
    current = stages.get(stage)
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = stages.get(current.get("extends", ""))
    for layer in reversed(chain):
        merged.update(layer)
    return merged


def table_arn(region: str, account_id: str, table: str) -> str:
    return f"arn:aws:dynamodb:{region}:{account_id}:table/{table}"


def _tables(stage: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """(short name, the stage's table name, its index names) of every model, from the models themselves."""
    from fxfer import dynamo

    prefix = dynamo.table_prefix()
    found = []
    for model in dynamo.all_models():
        short = model.Meta.table_name.removeprefix(prefix)
        schema = model._get_schema()
        indexes = schema.get("global_secondary_indexes", []) + schema.get("local_secondary_indexes", [])
        found.append((short, f"fxfer-{stage}-{short}", tuple(sorted(i["index_name"] for i in indexes))))
    return sorted(found)


def lambda_policy(
    *,
    stage: str,
    account_id: str,
    region: str,
    bucket: str | None = None,
    kms_key: str | None = None,
    from_address: str | None = None,
    configuration_set: str | None = None,
    failed_events_queue: str | None = None,
    function_name: str | None = None,
    parameter_path: str | None = None,
) -> dict:
    """The IAM policy document of the stage's Lambda role. Unnamed resources default to the stage's own names
    (`stage_names`); the sender to settings.DEFAULT_FROM_EMAIL (FXFER_FROM_EMAIL)."""
    from email.utils import parseaddr

    from django.conf import settings

    if not re.fullmatch(r"\d{12}", account_id):
        raise ValueError(f"an AWS account id has 12 digits, not {account_id!r}")
    names = stage_names(stage)
    bucket = bucket or names["bucket"]
    kms_key = kms_key or names["kms_key"]
    configuration_set = configuration_set or names["configuration_set"]
    failed_events_queue = failed_events_queue or names["failed_events_queue"]
    function_name = function_name or names["function_name"]
    parameter_path = parameter_path or names["parameter_path"]
    sender = parseaddr(from_address or settings.DEFAULT_FROM_EMAIL)[1].lower()
    if "@" not in sender:
        raise ValueError(f"not a sender address: {from_address!r}")

    statements = _dynamodb_statements(stage, account_id, region)
    statements += _s3_statements(bucket)
    statements += _kms_statements(kms_key, account_id, region)
    statements += _ses_statements(sender, configuration_set, account_id, region)
    statements += _runtime_statements(
        failed_events_queue=failed_events_queue,
        function_name=function_name,
        parameter_path=parameter_path,
        account_id=account_id,
        region=region,
    )
    return {"Version": POLICY_VERSION, "Statement": statements}


def lambda_trust_policy(*, account_id: str, region: str) -> dict:
    """Who may assume the role. Lambda runs the function as it; Zappa 0.63's REST API names the role as its
    integration's credentials (API Gateway assumes it to invoke the function: the role then also needs
    lambda:InvokeFunction on its function, docs/deploy.md step 4); Zappa's schedule rules name it as their role
    (EventBridge: only this account's rules in this region)."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": "LambdaRunsTheFunction",
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            },
            {
                "Sid": "ZappaRestApiInvokesTheFunctionWithThisRole",
                "Effect": "Allow",
                "Principal": {"Service": "apigateway.amazonaws.com"},
                "Action": "sts:AssumeRole",
            },
            {
                "Sid": "ZappaSchedulesNameThisRole",
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": account_id},
                    "ArnLike": {"aws:SourceArn": f"arn:aws:events:{region}:{account_id}:rule/*"},
                },
            },
        ],
    }


# --- DynamoDB --------------------------------------------------------------------------------------------------


def _dynamodb_statements(stage: str, account_id: str, region: str) -> list[dict]:
    tables = _tables(stage)
    unknown = sorted(short for short, _, _ in tables if short not in TABLE_ACTIONS)
    if unknown:
        raise LookupError(f"fxfer.iam.TABLE_ACTIONS says nothing about the table(s) {', '.join(unknown)}")
    statements = []
    for short, table, indexes in tables:
        actions = TABLE_ACTIONS[short]
        if not actions:
            continue
        arn = table_arn(region, account_id, table)
        # Query on each index the model declares (an index is only ever queried).
        resources = [arn] + ([f"{arn}/index/{name}" for name in indexes] if "dynamodb:Query" in actions else [])
        statements.append(
            {
                "Sid": f"Table{_camel(short)}",
                "Effect": "Allow",
                "Action": sorted(actions),
                "Resource": resources if len(resources) > 1 else resources[0],
            }
        )
    events = table_arn(region, account_id, f"fxfer-{stage}-audit-events")
    statements += [
        {
            "Sid": "AuditEventsChainerLinksInTransactions",
            "Effect": "Allow",
            "Action": "dynamodb:UpdateItem",
            "Resource": events,
            "Condition": {
                "ForAllValues:StringEquals": {"dynamodb:Attributes": list(AUDIT_CHAINER_ATTRIBUTES)},
                "ForAnyValue:StringEquals": {"dynamodb:EnclosingOperation": ["TransactWriteItems"]},
            },
        },
        {
            "Sid": "AuditEventsCountedPerMinute",
            "Effect": "Allow",
            "Action": "dynamodb:UpdateItem",
            "Resource": events,
            "Condition": {"ForAllValues:StringEquals": {"dynamodb:Attributes": list(AUDIT_COUNT_ATTRIBUTES)}},
        },
        {
            "Sid": "AuditTrailIsAppendOnly",
            "Effect": "Deny",
            "Action": ["dynamodb:DeleteItem", "dynamodb:BatchWriteItem"],
            "Resource": [table_arn(region, account_id, f"fxfer-{stage}-{t}") for t in APPEND_ONLY_TABLES],
        },
    ]
    return statements


# --- S3 --------------------------------------------------------------------------------------------------------


def _s3_statements(bucket: str) -> list[dict]:
    bucket_arn = f"arn:aws:s3:::{bucket}"
    return [
        {
            # transfers/storage.py: presigned POST and part URLs (the browser's upload is authorised as the
            # role that signed it), multipart create/list/complete/abort, HeadObject checks, presigned GETs of
            # the verified version, deletion of every version, legal holds.
            "Sid": "TransferFilesUnderFilesPrefix",
            "Effect": "Allow",
            "Action": sorted(S3_OBJECT_ACTIONS),
            "Resource": f"{bucket_arn}/{FILES_PREFIX}*",
        },
        {
            # Listing versions of one file (deletion, legal hold) and of the whole prefix (the orphan check).
            "Sid": "ListFileVersionsUnderFilesPrefix",
            "Effect": "Allow",
            "Action": "s3:ListBucketVersions",
            "Resource": bucket_arn,
            "Condition": {"StringLike": {"s3:prefix": f"{FILES_PREFIX}*"}},
        },
        {
            # HeadBucket (the health check) is authorised as ListBucket; the sweep lists abandoned multipart
            # uploads (ListMultipartUploads has no prefix condition key). No bucket configuration is granted.
            "Sid": "BucketHealthAndOpenUploads",
            "Effect": "Allow",
            "Action": sorted(S3_BUCKET_ACTIONS),
            "Resource": bucket_arn,
        },
    ]


# --- KMS -------------------------------------------------------------------------------------------------------


def _kms_statements(kms_key: str, account_id: str, region: str) -> list[dict]:
    if kms_key.startswith("arn:aws:kms:"):
        resource, by_alias = kms_key, {}
    elif kms_key.startswith("alias/"):
        # The key's id is made by `provision`; the alias names it. IAM authorises the key, so: any key of the
        # account in the region that carries this alias.
        resource = f"arn:aws:kms:{region}:{account_id}:key/*"
        by_alias = {"ForAnyValue:StringEquals": {"kms:ResourceAliases": [kms_key]}}
    else:
        resource, by_alias = f"arn:aws:kms:{region}:{account_id}:key/{kms_key}", {}
    return [
        {
            # S3 asks KMS as the caller: a data key for each object written (presigned POST, multipart), a
            # decryption for each read (presigned GET) and each multipart part. Only through S3.
            "Sid": "FileKeyOnlyThroughS3",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": resource,
            "Condition": {**by_alias, "StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
        },
        {
            # transfers/storage.kms_key_arn: the key's ARN for the upload policy and the HeadObject check.
            "Sid": "FileKeyDescribe",
            "Effect": "Allow",
            "Action": "kms:DescribeKey",
            "Resource": resource,
            **({"Condition": by_alias} if by_alias else {}),
        },
    ]


# --- SES -------------------------------------------------------------------------------------------------------


def _ses_statements(sender: str, configuration_set: str, account_id: str, region: str) -> list[dict]:
    domain = sender.rpartition("@")[2]
    return [
        {
            # django-ses (transfers/outbox.py): SendRawEmail from the verified domain, through the stage's
            # configuration set (bounces and complaints), only as the configured sender.
            "Sid": "SendMailAsItsSender",
            "Effect": "Allow",
            "Action": "ses:SendRawEmail",
            "Resource": [
                f"arn:aws:ses:{region}:{account_id}:identity/{domain}",
                f"arn:aws:ses:{region}:{account_id}:configuration-set/{configuration_set}",
            ],
            "Condition": {"StringEquals": {"ses:FromAddress": sender}},
        },
    ]


# --- what the runtime needs: the failed-events queue, X-Ray, logs, the stage's secrets --------------------------


def _runtime_statements(
    *, failed_events_queue: str, function_name: str, parameter_path: str, account_id: str, region: str
) -> list[dict]:
    queue_arn = f"arn:aws:sqs:{region}:{account_id}:{failed_events_queue}"
    log_group = f"arn:aws:logs:{region}:{account_id}:log-group:/aws/lambda/{function_name}"
    statements = [
        {
            # Lambda's async on-failure destination (provision sets it) sends the failed event as the function's
            # role.
            "Sid": "OnFailureDestinationSendsFailedEvents",
            "Effect": "Allow",
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
        },
        {
            # The operator's page in the compliance admin shows how many failed events wait (reports/operations.py).
            "Sid": "FailedEventsDepthForTheOperatorsPage",
            "Effect": "Allow",
            "Action": ["sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
            "Resource": queue_arn,
        },
        {
            # Active tracing (zappa_settings "xray_tracing"): the function sends its segments. X-Ray's write
            # actions take no resource but "*".
            "Sid": "XRayTraces",
            "Effect": "Allow",
            "Action": ["xray:PutTelemetryRecords", "xray:PutTraceSegments"],
            "Resource": "*",
        },
        {
            # The function's own log group only; `provision` creates it with its retention, so the role cannot
            # create a log group (one Lambda made itself would keep logs forever).
            "Sid": "OwnLogGroup",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": f"{log_group}:*",
        },
    ]
    if not re.fullmatch(r"/[A-Za-z0-9_.\-/]*/", parameter_path):
        raise ValueError(f"an SSM parameter path starts and ends with '/', not {parameter_path!r}")
    statements.append(
        {
            # The stage's secrets (fxfer.env.secret): one GetParameters, with decryption, the first time one is
            # used. They are encrypted with the account's AWS managed key aws/ssm, whose key policy lets the
            # account's principals decrypt through SSM: no kms:Decrypt grant is needed, and who may read them is
            # decided by ssm:GetParameters on this path.
            "Sid": "StageSecretsFromParameterStore",
            "Effect": "Allow",
            "Action": "ssm:GetParameters",
            "Resource": f"arn:aws:ssm:{region}:{account_id}:parameter{parameter_path}*",
        }
    )
    return statements


def size(policy: dict) -> int:
    """Characters IAM counts against its quota (whitespace is not counted)."""
    return len(re.sub(r"\s+", "", json.dumps(policy)))
