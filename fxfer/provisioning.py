"""Create or converge every AWS resource the app needs that Zappa does not create.

Idempotent: each step reads what is there, changes only what differs, and says which it did. Run twice, the
second run reports every step "unchanged". Used by `manage.py provision` in production and by `make run` and
the integration tests against the local stand-ins.
"""

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from pynamodb.attributes import TTLAttribute

from fxfer import aws, dynamo

CREATED, UPDATED, UNCHANGED, UNSUPPORTED = "created", "updated", "unchanged", "unsupported"
# Something only the operator can do (deploy the function first, put an ARN into zappa_settings.json).
ACTION_NEEDED = "action needed"

# Objects that belong to transfers and upload requests live under this prefix; the lifecycle backstop and the
# S3 event source are scoped to it.
FILES_PREFIX = "files/"


@dataclass(frozen=True)
class Step:
    resource: str
    action: str
    detail: str = ""


def provision() -> Iterator[Step]:
    """Converge tables, the KMS key, the bucket, the static bucket (production), (on a local stand-in) the SES
    sender, the SES bounce and complaint notifications, and the queue that keeps async events Lambda gave up on.
    Yields each step."""
    yield from _tables()
    key_arn, step = _kms_key()
    yield step
    yield from _bucket(key_arn)
    yield from _static_bucket(account_id=key_arn.split(":")[4])
    yield _ses_sender()
    yield from _ses_notifications()
    yield from _failed_events()
    yield from _malware_protection()
    yield from _monitoring()


# Services only provisioning talks to; their stand-in endpoints come from settings too.
_PROVISIONING_ENDPOINTS = {
    "sns": "FXFER_SNS_ENDPOINT",
    "sqs": "FXFER_SQS_ENDPOINT",
    "lambda": "FXFER_LAMBDA_ENDPOINT",
    "cloudwatch": "FXFER_CLOUDWATCH_ENDPOINT",
    "logs": "FXFER_LOGS_ENDPOINT",
}


def _client(service: str):
    if service not in _PROVISIONING_ENDPOINTS:
        return aws.client(service)
    return boto3.client(
        service,
        endpoint_url=getattr(settings, _PROVISIONING_ENDPOINTS[service], "") or None,
        config=Config(
            region_name=settings.FXFER_AWS_REGION,
            connect_timeout=10,
            read_timeout=10,
            retries={"max_attempts": 3, "mode": "standard"},
        ),
    )


# --- DynamoDB ------------------------------------------------------------------------------------------------


def _tables() -> Iterator[Step]:
    client = aws.client("dynamodb")
    for model in sorted(dynamo.all_models(), key=lambda m: m.Meta.table_name):
        name = model.Meta.table_name
        if not model.exists():
            model.create_table(wait=True, billing_mode="PAY_PER_REQUEST")
            yield Step(f"dynamodb table {name}", CREATED)
        else:
            yield _table_indexes(client, model)
        yield _table_ttl(client, model)
        yield _table_pitr(client, name)


def _table_indexes(client, model) -> Step:
    """Add global secondary indexes the model declares and the table lacks (one per UpdateTable call)."""
    name = model.Meta.table_name
    existing = {
        gsi["IndexName"] for gsi in client.describe_table(TableName=name)["Table"].get("GlobalSecondaryIndexes", [])
    }
    schema = model._get_schema()
    missing = [gsi for gsi in schema["global_secondary_indexes"] if gsi["index_name"] not in existing]
    if not missing:
        return Step(f"dynamodb table {name}", UNCHANGED)
    for gsi in missing:
        needed = {key["AttributeName"] for key in gsi["key_schema"]}
        client.update_table(
            TableName=name,
            AttributeDefinitions=[a for a in schema["attribute_definitions"] if a["AttributeName"] in needed],
            GlobalSecondaryIndexUpdates=[
                {
                    "Create": {
                        "IndexName": gsi["index_name"],
                        "KeySchema": gsi["key_schema"],
                        "Projection": gsi["projection"],
                    }
                }
            ],
        )
        client.get_waiter("table_exists").wait(TableName=name)
    return Step(f"dynamodb table {name}", UPDATED, "added indexes " + ", ".join(g["index_name"] for g in missing))


def _table_ttl(client, model) -> Step:
    name = model.Meta.table_name
    ttl_attrs = [attr.attr_name for attr in model.get_attributes().values() if isinstance(attr, TTLAttribute)]
    if not ttl_attrs:
        return Step(f"dynamodb ttl {name}", UNCHANGED, "no TTL attribute")
    current = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    if current.get("TimeToLiveStatus") in {"ENABLED", "ENABLING"} and current.get("AttributeName") == ttl_attrs[0]:
        return Step(f"dynamodb ttl {name}", UNCHANGED, ttl_attrs[0])
    client.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl_attrs[0]})
    return Step(f"dynamodb ttl {name}", UPDATED, ttl_attrs[0])


def _table_pitr(client, name: str) -> Step:
    try:
        status = client.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
        pitr = status.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus")
        if pitr == "ENABLED":
            return Step(f"dynamodb pitr {name}", UNCHANGED)
        client.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
    except ClientError as exc:
        if _unsupported(exc):
            return Step(f"dynamodb pitr {name}", UNSUPPORTED, "endpoint does not support point-in-time recovery")
        raise
    return Step(f"dynamodb pitr {name}", UPDATED, "point-in-time recovery on")


# --- KMS -----------------------------------------------------------------------------------------------------


def _kms_key() -> tuple[str, Step]:
    """The key that encrypts every file. An alias that does not exist yet gets a new customer-managed key with
    yearly rotation; a key id or ARN must already exist."""
    key_id = settings.FXFER_KMS_KEY_ID
    arn = aws.kms_key_arn(key_id)
    if arn:
        return arn, Step(f"kms key {key_id}", UNCHANGED, arn)
    if not key_id.startswith("alias/"):
        raise ImproperlyConfigured(f"The KMS key {key_id} does not exist; give an alias to have one created.")
    kms = aws.client("kms")
    metadata = kms.create_key(
        Description=f"fxfer {settings.FXFER_STAGE}: encrypts transferred files at rest",
        KeyUsage="ENCRYPT_DECRYPT",
        Tags=[{"TagKey": "app", "TagValue": "fxfer"}, {"TagKey": "stage", "TagValue": settings.FXFER_STAGE}],
    )["KeyMetadata"]
    kms.create_alias(AliasName=key_id, TargetKeyId=metadata["KeyId"])
    try:
        kms.enable_key_rotation(KeyId=metadata["KeyId"])
    except ClientError as exc:
        if not _unsupported(exc):
            raise
    return metadata["Arn"], Step(f"kms key {key_id}", CREATED, metadata["Arn"])


# --- S3 ------------------------------------------------------------------------------------------------------


def _deny_insecure_transport(bucket_arn: str) -> dict:
    """Every bucket's first statement: nothing over plain HTTP, to the bucket or its objects."""
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def bucket_policy(*, bucket: str, key_arn: str) -> dict:
    """Deny plain HTTP and old TLS, and deny writes that ask for another encryption or another KMS key.

    Multipart UploadPart carries no SSE header, so denying an *absent* header would break large uploads;
    default bucket encryption covers objects written without one, and the server checks every object's key id
    after upload. IAM evaluates a negated operator (StringNotEquals) *and* its ...IfExists form as true when
    the key is absent, so either alone would deny those parts too: each statement adds `Null: false`, which
    limits it to requests that do carry the header.
    """
    bucket_arn = f"arn:aws:s3:::{bucket}"
    everything = [bucket_arn, f"{bucket_arn}/*"]
    return {
        "Version": "2012-10-17",
        "Statement": [
            _deny_insecure_transport(bucket_arn),
            {
                "Sid": "DenyOldTls",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": everything,
                "Condition": {"NumericLessThan": {"s3:TlsVersion": "1.2"}},
            },
            {
                "Sid": "DenyOtherEncryption",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": f"{bucket_arn}/*",
                "Condition": {
                    "Null": {"s3:x-amz-server-side-encryption": "false"},
                    "StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"},
                },
            },
            {
                "Sid": "DenyOtherKmsKey",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": f"{bucket_arn}/*",
                "Condition": {
                    "Null": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "false"},
                    "StringNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": key_arn},
                },
            },
        ],
    }


def cors_rules() -> list[dict]:
    """Browsers upload and download directly: only the site's own origin. ETag is exposed for multipart parts,
    Location for a presigned POST (the uploader reads it from the answer and logs a CORS error without it)."""
    base = urlsplit(settings.FXFER_BASE_URL)
    return [
        {
            "AllowedOrigins": [f"{base.scheme}://{base.netloc}"],
            "AllowedMethods": ["GET", "HEAD", "PUT", "POST"],
            "AllowedHeaders": ["*"],
            "ExposeHeaders": ["ETag", "Location"],
            "MaxAgeSeconds": 3000,
        }
    ]


def lifecycle_rules() -> list[dict]:
    """The backstop behind the hourly sweep (lifecycle runs once a day). Versioning plus Object Lock legal hold
    lets the held objects survive: expiry turns the current version noncurrent, and a noncurrent version under
    legal hold cannot be deleted by the rule that removes the others a day later."""
    return [
        {
            "ID": "expire-files-after-max-retention",
            "Status": "Enabled",
            "Filter": {"Prefix": FILES_PREFIX},
            "Expiration": {"Days": settings.FXFER_MAX_RETENTION_DAYS + 1},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
        },
        {
            "ID": "remove-expired-delete-markers",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "Expiration": {"ExpiredObjectDeleteMarker": True},
        },
        {
            "ID": "abort-incomplete-multipart-uploads",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        },
    ]


def _bucket(key_arn: str) -> Iterator[Step]:
    s3 = aws.client("s3")
    bucket = settings.FXFER_BUCKET
    try:
        s3.head_bucket(Bucket=bucket)
        yield Step(f"s3 bucket {bucket}", UNCHANGED)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in {"404", "NoSuchBucket", "NotFound"}:
            raise
        create = {"Bucket": bucket, "ObjectLockEnabledForBucket": True}
        if settings.FXFER_AWS_REGION != "us-east-1":
            create["CreateBucketConfiguration"] = {"LocationConstraint": settings.FXFER_AWS_REGION}
        s3.create_bucket(**create)
        yield Step(f"s3 bucket {bucket}", CREATED, "object lock enabled")

    yield _public_access_block(s3, bucket)
    yield _converge(
        f"s3 versioning {bucket}",
        read=lambda: {"Status": s3.get_bucket_versioning(Bucket=bucket).get("Status")},
        missing=set(),
        desired={"Status": "Enabled"},
        write=lambda d: s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=d),
    )
    yield _default_encryption(s3, bucket, key_arn=key_arn)
    yield _bucket_policy(s3, bucket, bucket_policy(bucket=bucket, key_arn=key_arn))
    yield _converge(
        f"s3 cors {bucket}",
        read=lambda: [_cors_rule(r) for r in s3.get_bucket_cors(Bucket=bucket)["CORSRules"]],
        missing={"NoSuchCORSConfiguration"},
        desired=cors_rules(),
        write=lambda d: s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": d}),
    )
    yield _converge(
        f"s3 lifecycle {bucket}",
        read=lambda: [_lifecycle_rule(r) for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]],
        missing={"NoSuchLifecycleConfiguration"},
        desired=lifecycle_rules(),
        write=lambda d: s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": d}),
    )


# --- S3: the static bucket (fxfer/static.py), read by browsers through CloudFront only -------------------------


def static_bucket_policy(*, bucket: str, account_id: str) -> dict:
    """TLS only; objects readable by CloudFront (Origin Access Control signs its requests as the service) for the
    account's distributions, and by nobody else: Block Public Access stays on, as on every bucket. The assets are
    public anyway; what the bucket must never be is writable or listable from outside."""
    bucket_arn = f"arn:aws:s3:::{bucket}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            _deny_insecure_transport(bucket_arn),
            {
                "Sid": "CloudFrontReadsStaticFiles",
                "Effect": "Allow",
                "Principal": {"Service": "cloudfront.amazonaws.com"},
                "Action": "s3:GetObject",
                "Resource": f"{bucket_arn}/*",
                "Condition": {"StringEquals": {"AWS:SourceAccount": account_id}},
            },
        ],
    }


def _static_bucket(*, account_id: str) -> Iterator[Step]:
    """The bucket `collectstatic` uploads to (FXFER_STATIC_BUCKET; none locally, where the app serves them):
    private, SSE-S3 (CloudFront reads it without a KMS grant), readable through CloudFront only. The distribution
    in front of it is made once with the AWS CLI (docs/deploy.md, step 7)."""
    bucket = getattr(settings, "FXFER_STATIC_BUCKET", "")
    if not bucket:
        yield Step("s3 static bucket", UNCHANGED, "none configured: the app serves its static files")
        return
    if bucket == settings.FXFER_BUCKET:
        raise ImproperlyConfigured("FXFER_STATIC_BUCKET must not be the transfer bucket (FXFER_BUCKET).")
    s3 = aws.client("s3")
    try:
        s3.head_bucket(Bucket=bucket)
        yield Step(f"s3 bucket {bucket}", UNCHANGED, "static files")
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in {"404", "NoSuchBucket", "NotFound"}:
            raise
        create = {"Bucket": bucket}
        if settings.FXFER_AWS_REGION != "us-east-1":
            create["CreateBucketConfiguration"] = {"LocationConstraint": settings.FXFER_AWS_REGION}
        try:
            s3.create_bucket(**create)
        except ClientError as exc:  # a lost answer: botocore's retry meets the bucket its first attempt made
            if exc.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
                raise
        yield Step(f"s3 bucket {bucket}", CREATED, "static files")
    yield _public_access_block(s3, bucket)
    yield _default_encryption(s3, bucket, key_arn=None)
    yield _bucket_policy(s3, bucket, static_bucket_policy(bucket=bucket, account_id=account_id))


def _public_access_block(s3, bucket: str) -> Step:
    """Block Public Access, all four settings on: every bucket of the app."""
    return _converge(
        f"s3 public access block {bucket}",
        read=lambda: s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"],
        missing={"NoSuchPublicAccessBlockConfiguration"},
        desired=dict.fromkeys(
            ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
        ),
        write=lambda d: s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=d),
    )


def _default_encryption(s3, bucket: str, *, key_arn: str | None) -> Step:
    """SSE-KMS with that key and an S3 Bucket Key, or SSE-S3 (AES256) without one."""
    if key_arn:
        desired = {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn, "BucketKeyEnabled": True}
    else:
        desired = {"SSEAlgorithm": "AES256", "KMSMasterKeyID": None, "BucketKeyEnabled": False}

    def write(d: dict) -> None:
        default = {"SSEAlgorithm": d["SSEAlgorithm"]}
        rule = {"ApplyServerSideEncryptionByDefault": default}
        if d["KMSMasterKeyID"]:
            default["KMSMasterKeyID"] = d["KMSMasterKeyID"]
            rule["BucketKeyEnabled"] = d["BucketKeyEnabled"]
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [rule]})

    return _converge(
        f"s3 default encryption {bucket}",
        read=lambda: _encryption(s3.get_bucket_encryption(Bucket=bucket)),
        missing={"ServerSideEncryptionConfigurationNotFoundError"},
        desired=desired,
        write=write,
    )


def _bucket_policy(s3, bucket: str, policy: dict) -> Step:
    return _converge(
        f"s3 bucket policy {bucket}",
        read=lambda: json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]),
        missing={"NoSuchBucketPolicy"},
        desired=policy,
        write=lambda d: s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(d)),
    )


def _converge(resource: str, *, read: Callable, missing: set[str], desired, write: Callable) -> Step:
    try:
        current = read()
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in missing:
            raise
        write(desired)
        return Step(resource, CREATED)
    if current == desired:
        return Step(resource, UNCHANGED)
    write(desired)
    return Step(resource, UPDATED)


def _encryption(response: dict) -> dict:
    rule = response["ServerSideEncryptionConfiguration"]["Rules"][0]
    default = rule.get("ApplyServerSideEncryptionByDefault", {})
    return {
        "SSEAlgorithm": default.get("SSEAlgorithm"),
        "KMSMasterKeyID": default.get("KMSMasterKeyID"),
        "BucketKeyEnabled": bool(rule.get("BucketKeyEnabled")),
    }


def _cors_rule(rule: dict) -> dict:
    return {
        k: rule.get(k) for k in ("AllowedOrigins", "AllowedMethods", "AllowedHeaders", "ExposeHeaders", "MaxAgeSeconds")
    }


def _lifecycle_rule(rule: dict) -> dict:
    # S3 echoes rules with extra defaults ("ExpiredObjectDeleteMarker": False next to Days, …): keep what we set.
    wanted = {"ID", "Status", "Filter", "Expiration", "NoncurrentVersionExpiration", "AbortIncompleteMultipartUpload"}
    out = {k: v for k, v in rule.items() if k in wanted}
    if "Expiration" in out:
        out["Expiration"] = {
            k: v for k, v in out["Expiration"].items() if not (k == "ExpiredObjectDeleteMarker" and v is False)
        }
    return out


# --- SES -----------------------------------------------------------------------------------------------------


def _ses_sender() -> Step:
    """Locally, verify the sender on the SES stand-in. In AWS, verifying a domain needs DNS records the operator
    publishes: report the status and leave it to them (README, "Deploy")."""
    ses = aws.client("ses")
    sender = settings.DEFAULT_FROM_EMAIL
    domain = sender.rpartition("@")[2]
    status = ses.get_identity_verification_attributes(Identities=[sender, domain])["VerificationAttributes"]
    if any(v.get("VerificationStatus") == "Success" for v in status.values()):
        return Step(f"ses sender {sender}", UNCHANGED, "verified")
    if settings.FXFER_SES_VERIFY_SENDER:
        ses.verify_email_identity(EmailAddress=sender)
        return Step(f"ses sender {sender}", CREATED, "verified on the local stand-in")
    return Step(f"ses sender {sender}", UNSUPPORTED, f"verify the domain {domain} in SES (DNS records) before sending")


# --- SES bounces and complaints → SNS → transfers.notifications.on_ses_notification ---------------------------

SES_EVENT_DESTINATION = "bounces-and-complaints"
SES_EVENT_TYPES = ["bounce", "complaint"]
SES_HANDLER = "transfers.notifications.on_ses_notification"


def _ses_notifications() -> Iterator[Step]:
    """The SNS topic SES publishes bounces and complaints to, and the configuration set (named on every mail
    by django-ses) whose event destination it is. The Lambda subscribes to the topic through Zappa's SNS event
    source (zappa_settings.json), which must name this topic's ARN."""
    sns = _client("sns")
    topic_arn, step = _topic(sns, settings.FXFER_SES_NOTIFICATIONS_TOPIC)
    yield step

    ses = aws.client("ses")
    name = settings.AWS_SES_CONFIGURATION_SET
    try:
        described = ses.describe_configuration_set(
            ConfigurationSetName=name, ConfigurationSetAttributeNames=["eventDestinations"]
        )
        yield Step(f"ses configuration set {name}", UNCHANGED)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConfigurationSetDoesNotExist":
            raise
        ses.create_configuration_set(ConfigurationSet={"Name": name})
        described = {"EventDestinations": []}
        yield Step(f"ses configuration set {name}", CREATED)

    desired = ses_event_destination(topic_arn)
    current = next(
        (d for d in described.get("EventDestinations") or [] if d and d.get("Name") == SES_EVENT_DESTINATION), None
    )
    resource = f"ses event destination {name}/{SES_EVENT_DESTINATION}"
    if current is None:
        ses.create_configuration_set_event_destination(ConfigurationSetName=name, EventDestination=desired)
        yield Step(resource, CREATED, "bounce, complaint → " + topic_arn)
    elif _event_destination(current) == _event_destination(desired):
        yield Step(resource, UNCHANGED)
    else:
        try:
            ses.update_configuration_set_event_destination(ConfigurationSetName=name, EventDestination=desired)
        except ClientError as exc:
            if _unsupported(exc):
                yield Step(resource, UNSUPPORTED, "endpoint cannot update an event destination")
                return
            raise
        yield Step(resource, UPDATED, "bounce, complaint → " + topic_arn)
    yield _zappa_sns_source(topic_arn)


def ses_event_destination(topic_arn: str) -> dict:
    return {
        "Name": SES_EVENT_DESTINATION,
        "Enabled": True,
        "MatchingEventTypes": SES_EVENT_TYPES,
        "SNSDestination": {"TopicARN": topic_arn},
    }


def _event_destination(destination: dict) -> tuple:
    return (
        bool(destination.get("Enabled")),
        sorted(destination.get("MatchingEventTypes") or []),
        (destination.get("SNSDestination") or {}).get("TopicARN"),
    )


def _topic(sns, name: str) -> tuple[str, Step]:
    """The SNS topic's ARN, the topic created (tagged) when there is none yet."""
    topic_arn = _topic_arn(sns, name)
    if topic_arn:
        return topic_arn, Step(f"sns topic {name}", UNCHANGED, topic_arn)
    topic_arn = sns.create_topic(Name=name, Tags=_tags())["TopicArn"]
    return topic_arn, Step(f"sns topic {name}", CREATED, topic_arn)


def _topic_arn(sns, name: str) -> str | None:
    for page in sns.get_paginator("list_topics").paginate():
        for topic in page.get("Topics", []):
            if topic["TopicArn"].rsplit(":", 1)[-1] == name:
                return topic["TopicArn"]
    return None


def _zappa_sns_source(topic_arn: str) -> Step:
    """Zappa routes an SNS record to a function by its topic ARN, which holds the account id: the committed
    zappa_settings.json says ACCOUNT_ID there, and the operator puts the real ARN in before deploying."""
    resource = f"zappa sns event source {SES_HANDLER}"
    path = settings.BASE_DIR / "zappa_settings.json"
    if not settings.FXFER_LAMBDA_FUNCTION or not path.exists():
        return Step(resource, UNCHANGED, "no function deployed from here")
    stages = json.loads(path.read_text())
    stage = stages.get(settings.FXFER_STAGE) or {}
    events = stage.get("events") or stages.get(stage.get("extends", ""), {}).get("events") or []
    arns = [e.get("event_source", {}).get("arn") for e in events if e.get("function") == SES_HANDLER]
    if topic_arn in arns:
        return Step(resource, UNCHANGED, topic_arn)
    return Step(
        resource,
        ACTION_NEEDED,
        f"set this event source's arn in zappa_settings.json ({settings.FXFER_STAGE}) to {topic_arn}, then deploy",
    )


# --- Async Lambda events: two retries, then the failed-events queue -------------------------------------------

FAILED_EVENTS_RETENTION_SECONDS = 14 * 24 * 60 * 60  # SQS's longest
ASYNC_RETRIES = 2


def failed_events_queue_attributes() -> dict[str, str]:
    return {"MessageRetentionPeriod": str(FAILED_EVENTS_RETENTION_SECONDS), "SqsManagedSseEnabled": "true"}


def _failed_events() -> Iterator[Step]:
    """The SQS queue (encrypted, 14 days) that receives every async event (the S3 event, the schedules, SNS)
    Lambda gave up on after its two retries, and the function's async settings that send them there."""
    sqs = _client("sqs")
    name = settings.FXFER_FAILED_EVENTS_QUEUE
    desired = failed_events_queue_attributes()
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}:
            raise
        tags = {"app": "fxfer", "stage": settings.FXFER_STAGE}
        url = sqs.create_queue(QueueName=name, Attributes=desired, tags=tags)["QueueUrl"]
        yield Step(f"sqs queue {name}", CREATED, "encrypted, 14-day retention")
    else:
        current = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(desired))["Attributes"]
        drifted = {k: v for k, v in desired.items() if str(current.get(k, "")).lower() != v.lower()}
        if drifted:
            sqs.set_queue_attributes(QueueUrl=url, Attributes=drifted)
            yield Step(f"sqs queue {name}", UPDATED, ", ".join(sorted(drifted)))
        else:
            yield Step(f"sqs queue {name}", UNCHANGED)
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    yield _on_failure_destination(queue_arn)


def _on_failure_destination(queue_arn: str) -> Step:
    function = settings.FXFER_LAMBDA_FUNCTION
    resource = f"lambda async on-failure {function or '(no function)'}"
    if not function:
        return Step(resource, UNCHANGED, "no Lambda function here (local): nothing to route")
    lam = _client("lambda")
    try:
        lam.get_function(FunctionName=function)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        return Step(resource, ACTION_NEEDED, "the function is not deployed yet: provision again after `zappa deploy`")
    desired = {"MaximumRetryAttempts": ASYNC_RETRIES, "DestinationConfig": {"OnFailure": {"Destination": queue_arn}}}
    try:
        current = lam.get_function_event_invoke_config(FunctionName=function)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        current = None
    if current is not None and _invoke_config(current) == _invoke_config(desired):
        return Step(resource, UNCHANGED, queue_arn)
    lam.put_function_event_invoke_config(FunctionName=function, **desired)
    return Step(resource, CREATED if current is None else UPDATED, f"{ASYNC_RETRIES} retries, then {queue_arn}")


def _invoke_config(config: dict) -> tuple:
    on_failure = ((config.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
    return (config.get("MaximumRetryAttempts"), on_failure)


# --- Monitoring: the alarms topic, the alarms, the function's log retention ------------------------------------
# Metric names and dimensions come from fxfer/observability.py (the code that emits them), so they cannot drift.

# Valid values of CloudWatch Logs' retentionInDays.
LOG_RETENTION_CHOICES = frozenset({1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192})
# Spikes: failed one-time codes and sign-ins within five minutes (a guess at "more than a person mistyping").
FAILED_CODES_SPIKE = 20
FAILED_SIGNINS_SPIKE = 10
# SES puts an account under review at a 5 % bounce rate: warn at 4 %.
SES_BOUNCE_RATE_ALARM = 0.04
# The chainer links an event within MERGE_DELAY (2 minutes); an event waiting 5 minutes means it stopped.
CHAIN_LAG_ALARM_SECONDS = 300
# Each job that runs on a schedule: (period, periods) within which at least one run must succeed.
SCHEDULED_JOBS = {
    "reports.jobs.every_minute": (600, 1),
    "transfers.jobs.expire_sweep": (3600, 2),
    "reports.jobs.aggregate_daily": (86400, 1),
}
# Every job entry point (fxfer.observability.observed_job): any failed run alarms.
JOBS = (*SCHEDULED_JOBS, "transfers.jobs.on_object_created", "transfers.notifications.on_ses_notification")


def alarms_topic_name() -> str:
    return f"fxfer-{settings.FXFER_STAGE}-alarms"


def log_group_name() -> str:
    return f"/aws/lambda/{settings.FXFER_LAMBDA_FUNCTION}"


def alarm_definitions(topic_arn: str) -> list[dict]:
    """Every alarm of the stage, as put_metric_alarm takes it; each notifies the alarms topic."""
    from fxfer import observability as obs

    stage = settings.FXFER_STAGE
    ours = [{"Name": k, "Value": v} for k, v in sorted(obs.dimensions(stage).items())]
    function = [{"Name": "FunctionName", "Value": settings.FXFER_LAMBDA_FUNCTION}]
    queue = [{"Name": "QueueName", "Value": settings.FXFER_FAILED_EVENTS_QUEUE}]

    def alarm(name, description, metric, dimensions, statistic, threshold, operator, **more):
        namespace, metric_name = metric
        return {
            "AlarmName": f"fxfer-{stage}-{name}",
            "AlarmDescription": description,
            "Namespace": namespace,
            "MetricName": metric_name,
            "Dimensions": dimensions,
            "Statistic": statistic,
            "Period": more.get("period", 300),
            "EvaluationPeriods": more.get("periods", 1),
            "DatapointsToAlarm": more.get("periods", 1),
            "Threshold": float(threshold),
            "ComparisonOperator": operator,
            "TreatMissingData": more.get("missing", "notBreaching"),
            "ActionsEnabled": True,
            "AlarmActions": [topic_arn],
            "OKActions": [topic_arn],
        }

    at_least, above, below = "GreaterThanOrEqualToThreshold", "GreaterThanThreshold", "LessThanThreshold"
    definitions = [
        alarm(
            "lambda-errors",
            "The function raised an error (a 5xx, or a job Lambda retries).",
            ("AWS/Lambda", "Errors"),
            function,
            "Sum",
            1,
            at_least,
        ),
        alarm(
            "lambda-throttles",
            "Lambda throttled invocations (concurrency limit).",
            ("AWS/Lambda", "Throttles"),
            function,
            "Sum",
            1,
            at_least,
        ),
        alarm(
            "failed-events",
            "Async events Lambda gave up on wait on the on-failure queue: replay them.",
            ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
            queue,
            "Maximum",
            0,
            above,
        ),
        alarm(
            "failed-codes-spike",
            f"{FAILED_CODES_SPIKE}+ wrong one-time codes in 5 minutes.",
            (obs.NAMESPACE, obs.FAILED_CODES),
            ours,
            "Sum",
            FAILED_CODES_SPIKE,
            at_least,
        ),
        alarm(
            "failed-signins-spike",
            f"{FAILED_SIGNINS_SPIKE}+ failed or refused sign-ins in 5 minutes.",
            (obs.NAMESPACE, obs.FAILED_SIGNINS),
            ours,
            "Sum",
            FAILED_SIGNINS_SPIKE,
            at_least,
        ),
        alarm(
            "ses-bounce-rate",
            "SES bounce rate near the 5 % at which SES reviews the account.",
            ("AWS/SES", "Reputation.BounceRate"),
            [],
            "Maximum",
            SES_BOUNCE_RATE_ALARM,
            at_least,
            period=3600,
        ),
        alarm(
            "chain-lag",
            "Audit events wait for the chainer longer than the merge delay.",
            (obs.NAMESPACE, obs.CHAIN_LAG),
            ours,
            "Maximum",
            CHAIN_LAG_ALARM_SECONDS,
            at_least,
            periods=2,
        ),
    ]
    for job in JOBS:
        short = job.rsplit(".", 1)[1].replace("_", "-")
        with_job = sorted([*ours, {"Name": "job", "Value": job}], key=lambda d: d["Name"])
        failed = (obs.NAMESPACE, obs.JOB_FAILED)
        definitions.append(
            alarm(f"job-failed-{short}", f"A run of {job} failed.", failed, with_job, "Sum", 1, at_least)
        )
        if job in SCHEDULED_JOBS:
            period, periods = SCHEDULED_JOBS[job]
            description = f"No successful run of {job} in {period * periods // 60} minutes."
            succeeded = (obs.NAMESPACE, obs.JOB_SUCCEEDED)
            definitions.append(
                alarm(
                    f"job-missing-{short}",
                    description,
                    succeeded,
                    with_job,
                    "Sum",
                    1,
                    below,
                    period=period,
                    periods=periods,
                    missing="breaching",
                )
            )
    return definitions


def _monitoring() -> Iterator[Step]:
    """The SNS topic alarms notify (the operator subscribes to it), the alarms, and the function's log group
    with its retention. Only for a deployed stage: locally there is no function to watch."""
    if not settings.FXFER_LAMBDA_FUNCTION:
        yield Step("cloudwatch alarms", UNCHANGED, "no Lambda function here (local): nothing to watch")
        return
    sns = _client("sns")
    topic_arn, step = _topic(sns, alarms_topic_name())
    yield step
    yield _alarm_subscribers(sns, topic_arn)
    cloudwatch = _client("cloudwatch")
    for definition in alarm_definitions(topic_arn):
        yield _alarm(cloudwatch, definition)
    yield _log_retention()


def _alarm_subscribers(sns, topic_arn: str) -> Step:
    resource = f"sns subscriptions {alarms_topic_name()}"
    subscribed = [
        s
        for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn)
        for s in page.get("Subscriptions", [])
        if s.get("SubscriptionArn", "").startswith("arn:")  # "PendingConfirmation" until the mail is confirmed
    ]
    if subscribed:
        return Step(resource, UNCHANGED, f"{len(subscribed)} confirmed")
    return Step(
        resource,
        ACTION_NEEDED,
        "nobody receives the alarms: aws sns subscribe --topic-arn "
        f"{topic_arn} --protocol email --notification-endpoint <operator address>, then confirm the mail",
    )


_ALARM_FIELDS = (
    "AlarmDescription",
    "Namespace",
    "MetricName",
    "Statistic",
    "Period",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "Threshold",
    "ComparisonOperator",
    "TreatMissingData",
    "ActionsEnabled",
)


def _alarm_shape(alarm: dict) -> dict:
    shape = {key: alarm.get(key) for key in _ALARM_FIELDS}
    shape["Threshold"] = float(shape["Threshold"] or 0)
    shape["Dimensions"] = sorted((d["Name"], d["Value"]) for d in alarm.get("Dimensions") or [])
    shape["AlarmActions"] = sorted(alarm.get("AlarmActions") or [])
    shape["OKActions"] = sorted(alarm.get("OKActions") or [])
    return shape


def _alarm(cloudwatch, definition: dict) -> Step:
    """put_metric_alarm creates or replaces: call it only when the alarm is absent or differs."""
    name = definition["AlarmName"]
    found = cloudwatch.describe_alarms(AlarmNames=[name], AlarmTypes=["MetricAlarm"]).get("MetricAlarms") or []
    if found and _alarm_shape(found[0]) == _alarm_shape(definition):
        return Step(f"cloudwatch alarm {name}", UNCHANGED)
    cloudwatch.put_metric_alarm(**definition, Tags=_tags() if not found else [])
    return Step(f"cloudwatch alarm {name}", UPDATED if found else CREATED, definition["AlarmDescription"])


def _log_retention() -> Step:
    """The function's log group, created if Lambda has not yet (it does at the first log line), with a finite
    retention: CloudWatch keeps logs forever by default, and pays for every month of them."""
    days = int(getattr(settings, "FXFER_LOG_RETENTION_DAYS", 90))
    if days not in LOG_RETENTION_CHOICES:
        raise ImproperlyConfigured(
            f"FXFER_LOG_RETENTION_DAYS={days} is not a CloudWatch Logs retention; pick one of "
            + ", ".join(map(str, sorted(LOG_RETENTION_CHOICES)))
        )
    logs = _client("logs")
    name = log_group_name()
    resource = f"log group {name}"
    groups = logs.describe_log_groups(logGroupNamePrefix=name).get("logGroups") or []
    current = next((g for g in groups if g["logGroupName"] == name), None)
    if current is None:
        try:
            logs.create_log_group(logGroupName=name, tags={"app": "fxfer", "stage": settings.FXFER_STAGE})
        except logs.exceptions.ResourceAlreadyExistsException:
            pass  # our own create whose answer was lost (botocore retried it), or Lambda's first invocation
        logs.put_retention_policy(logGroupName=name, retentionInDays=days)
        return Step(resource, CREATED, f"kept {days} days")
    if current.get("retentionInDays") == days:
        return Step(resource, UNCHANGED, f"kept {days} days")
    logs.put_retention_policy(logGroupName=name, retentionInDays=days)
    return Step(resource, UPDATED, f"kept {days} days")


def _tags() -> list[dict]:
    return [{"Key": "app", "Value": "fxfer"}, {"Key": "stage", "Value": settings.FXFER_STAGE}]


def _unsupported(exc: ClientError) -> bool:
    code = exc.response.get("Error", {}).get("Code", "")
    return code in {"UnknownOperationException", "NotImplemented", "NotImplementedError", "InternalFailure", "501"}


# --- The malware scan: GuardDuty Malware Protection for S3 and its verdicts' way to the function ------------------
# GuardDuty scans each new object under files/ itself and tags it with its verdict (transfers.services.scanning);
# the EventBridge rule hands each "Object Scan Result" event to the function. Zappa's handler routes only scheduled
# EventBridge events to a function by themselves (by the rule's name), so the rule's target rewrites the event into
# Zappa's command form, {"command": "transfers.jobs.on_scan_result", "detail": ...}, which it runs as is.

SCAN_RESULT_HANDLER = "transfers.jobs.on_scan_result"
SCAN_RESULT_DETAIL_TYPE = "GuardDuty Malware Protection Object Scan Result"


def scan_result_rule_name() -> str:
    return f"{settings.FXFER_LAMBDA_FUNCTION or 'fxfer-' + settings.FXFER_STAGE}-scan-results"


def scan_result_pattern() -> dict:
    """The EventBridge event pattern of this stage's bucket's scan results (the default bus of the account)."""
    return {
        "source": ["aws.guardduty"],
        "detail-type": [SCAN_RESULT_DETAIL_TYPE],
        "detail": {"s3ObjectDetails": {"bucketName": [settings.FXFER_BUCKET]}},
    }


def scan_result_target(function_arn: str) -> dict:
    """The rule's target: the function, with the event in Zappa's command form."""
    return {
        "Id": "fxfer-function",
        "Arn": function_arn,
        "InputTransformer": {
            "InputPathsMap": {"detail": "$.detail", "detailType": "$.detail-type"},
            "InputTemplate": f'{{"command": "{SCAN_RESULT_HANDLER}", "detail-type": <detailType>, "detail": <detail>}}',
        },
    }


def _malware_protection() -> Iterator[Step]:
    """With FXFER_SCANNER "guardduty": the Malware Protection plan on the bucket's files/ prefix (tagging on), and
    the rule that brings its verdicts to the function. Other scanners: nothing to set up."""
    if settings.FXFER_SCANNER != "guardduty":
        yield Step("guardduty malware protection", UNCHANGED, f"FXFER_SCANNER is {settings.FXFER_SCANNER}: no plan")
        return
    yield _malware_protection_plan()
    yield _scan_result_rule()


def _malware_protection_plan() -> Step:
    bucket = settings.FXFER_BUCKET
    resource = f"guardduty malware protection plan {bucket}/{FILES_PREFIX}"
    guardduty = _client("guardduty")
    plan_ids: list[str] = []
    try:
        token = None
        while True:  # botocore has no paginator for this one
            page = guardduty.list_malware_protection_plans(**({"NextToken": token} if token else {}))
            plan_ids += [summary["MalwareProtectionPlanId"] for summary in page.get("MalwareProtectionPlans", [])]
            token = page.get("NextToken")
            if not token:
                break
    except ClientError as exc:
        if _unsupported(exc):
            return Step(resource, UNSUPPORTED, "this endpoint has no GuardDuty Malware Protection for S3")
        raise
    for plan_id in plan_ids:
        plan = guardduty.get_malware_protection_plan(MalwareProtectionPlanId=plan_id)
        s3_bucket = (plan.get("ProtectedResource") or {}).get("S3Bucket") or {}
        if s3_bucket.get("BucketName") != bucket:
            continue
        prefixes = s3_bucket.get("ObjectPrefixes") or []
        tagging = ((plan.get("Actions") or {}).get("Tagging") or {}).get("Status")
        if prefixes == [FILES_PREFIX] and tagging == "ENABLED":
            return Step(resource, UNCHANGED, f"{plan_id} ({plan.get('Status', '?')})")
        guardduty.update_malware_protection_plan(
            MalwareProtectionPlanId=plan_id,
            Actions={"Tagging": {"Status": "ENABLED"}},
            ProtectedResource={"S3Bucket": {"ObjectPrefixes": [FILES_PREFIX]}},
        )
        return Step(resource, UPDATED, f"{plan_id}: scans {FILES_PREFIX} only, tags each verdict")
    role = settings.FXFER_GUARDDUTY_ROLE_ARN
    if not role:
        return Step(
            resource,
            ACTION_NEEDED,
            "create GuardDuty's role for the bucket (docs/deploy.md, the malware scan step), set "
            "FXFER_GUARDDUTY_ROLE_ARN to its ARN, then provision again",
        )
    created = guardduty.create_malware_protection_plan(
        ClientToken=f"fxfer-{settings.FXFER_STAGE}-{bucket}"[:64],  # a retried create makes no second plan
        Role=role,
        ProtectedResource={"S3Bucket": {"BucketName": bucket, "ObjectPrefixes": [FILES_PREFIX]}},
        Actions={"Tagging": {"Status": "ENABLED"}},
        Tags={tag["Key"]: tag["Value"] for tag in _tags()},
    )
    return Step(resource, CREATED, created.get("MalwareProtectionPlanId", ""))


def _invoke_granted(lam, function: str, statement: str) -> bool:
    """Whether the function's resource policy holds the statement (no policy yet: not)."""
    try:
        policy = json.loads(lam.get_policy(FunctionName=function)["Policy"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        return False
    return any(s.get("Sid") == statement for s in policy.get("Statement", []))


def _scan_result_rule() -> Step:
    function = settings.FXFER_LAMBDA_FUNCTION
    name = scan_result_rule_name()
    resource = f"eventbridge rule {name}"
    if not function:
        return Step(resource, UNCHANGED, "no Lambda function here (local): nothing to route")
    lam = _client("lambda")
    try:
        function_arn = lam.get_function(FunctionName=function)["Configuration"]["FunctionArn"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        return Step(resource, ACTION_NEEDED, "the function is not deployed yet: provision again after `zappa deploy`")
    events = _client("events")
    pattern = json.dumps(scan_result_pattern(), sort_keys=True)
    target = scan_result_target(function_arn)
    try:
        current = events.describe_rule(Name=name)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        current = None
    targets = events.list_targets_by_rule(Rule=name).get("Targets", []) if current else []
    same_pattern = current is not None and json.loads(current.get("EventPattern") or "{}") == scan_result_pattern()
    changed = not (same_pattern and current.get("State") == "ENABLED" and targets == [target])
    if changed:
        rule_arn = events.put_rule(
            Name=name,
            EventPattern=pattern,
            State="ENABLED",
            Description=f"GuardDuty's malware-scan verdicts on {settings.FXFER_BUCKET} -> {SCAN_RESULT_HANDLER}",
            Tags=_tags(),
        )["RuleArn"]
        events.put_targets(Rule=name, Targets=[target])
    else:
        rule_arn = current["Arn"]
    # Checked every run, not only with the rule: a run that stopped after the rule and its target (an AddPermission
    # that failed) left a rule that cannot invoke the function, and the next run must finish it.
    statement = f"{name}-invokes"[:100]
    if not _invoke_granted(lam, function, statement):
        try:
            lam.add_permission(
                FunctionName=function,
                StatementId=statement,
                Action="lambda:InvokeFunction",
                Principal="events.amazonaws.com",
                SourceArn=rule_arn,
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceConflictException":  # a retry after a lost answer
                raise
        changed = True
    route = f"{SCAN_RESULT_DETAIL_TYPE} -> {SCAN_RESULT_HANDLER}"
    if not changed:
        return Step(resource, UNCHANGED, route)
    return Step(resource, CREATED if current is None else UPDATED, route)
