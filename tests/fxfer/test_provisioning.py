"""`manage.py provision` builds what the app needs, converges drift, and changes nothing the second time."""

import json
from io import StringIO

import boto3
import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from fxfer import dynamo
from fxfer.provisioning import ACTION_NEEDED, CREATED, UNCHANGED, bucket_policy, provision, static_bucket_policy
from tests.faults import LOST, PERSISTENT, TIMEOUT, inject

# Provisioning itself under test: a world provisioned anew for each test, not the per-process one put back.
pytestmark = pytest.mark.fresh_world


def _s3():
    return boto3.client("s3", region_name=settings.FXFER_AWS_REGION)


def _key_arn() -> str:
    kms = boto3.client("kms", region_name=settings.FXFER_AWS_REGION)
    return kms.describe_key(KeyId=settings.FXFER_KMS_KEY_ID)["KeyMetadata"]["Arn"]


def test_second_run_changes_nothing():
    steps = list(provision())
    changed = [s for s in steps if s.action != UNCHANGED and s.resource.split()[0] != "ses"]
    assert changed == []


def test_command_reports_each_step_and_a_total():
    out = StringIO()
    call_command("provision", stdout=out)
    text = out.getvalue()
    assert f"unchanged    s3 bucket {settings.FXFER_BUCKET}" in text
    assert "Provisioned: 0 change(s)." in text


def test_every_table_is_on_demand_with_its_indexes_ttl_and_pitr():
    client = boto3.client("dynamodb", region_name=settings.FXFER_AWS_REGION)
    names = client.list_tables()["TableNames"]
    audit = dynamo.table_name("audit-events")
    assert {audit, dynamo.table_name("audit-chain"), dynamo.table_name("daily-stats")} <= set(names)
    for name in names:
        table = client.describe_table(TableName=name)["Table"]
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        backups = client.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
        assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    indexes = {i["IndexName"] for i in client.describe_table(TableName=audit)["Table"]["GlobalSecondaryIndexes"]}
    assert indexes == {"by-day", "by-subject", "by-actor", "by-unchained"}
    ttl = client.describe_time_to_live(TableName=audit)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")
    # A person's sessions end all at once (deprovisioning, "sign out everywhere", IdP logout); compliance finds
    # the person by address.
    sessions = client.describe_table(TableName=dynamo.table_name("sessions"))["Table"]["GlobalSecondaryIndexes"]
    assert {i["IndexName"] for i in sessions} == {"by-user"}
    users = client.describe_table(TableName=dynamo.table_name("users"))["Table"]["GlobalSecondaryIndexes"]
    assert {i["IndexName"] for i in users} == {"by-email"}


def test_bucket_is_private_and_encrypted_with_the_kms_key_and_bucket_key():
    s3 = _s3()
    block = s3.get_public_access_block(Bucket=settings.FXFER_BUCKET)["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4
    rule = s3.get_bucket_encryption(Bucket=settings.FXFER_BUCKET)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": _key_arn()}
    assert rule["BucketKeyEnabled"] is True
    assert s3.get_bucket_versioning(Bucket=settings.FXFER_BUCKET)["Status"] == "Enabled"
    lock = s3.get_object_lock_configuration(Bucket=settings.FXFER_BUCKET)["ObjectLockConfiguration"]
    assert lock["ObjectLockEnabled"] == "Enabled"


def test_cors_allows_only_the_site_origin_and_exposes_etag_and_location():
    rules = _s3().get_bucket_cors(Bucket=settings.FXFER_BUCKET)["CORSRules"]
    assert [r["AllowedOrigins"] for r in rules] == [[settings.FXFER_BASE_URL]]
    assert rules[0]["ExposeHeaders"] == ["ETag", "Location"]
    assert "DELETE" not in rules[0]["AllowedMethods"]


def test_lifecycle_is_the_backstop_after_max_retention_and_aborts_stale_multipart():
    rules = {r["ID"]: r for r in _s3().get_bucket_lifecycle_configuration(Bucket=settings.FXFER_BUCKET)["Rules"]}
    expire = rules["expire-files-after-max-retention"]
    assert expire["Expiration"]["Days"] == settings.FXFER_MAX_RETENTION_DAYS + 1
    assert expire["Filter"] == {"Prefix": "files/"}
    assert expire["NoncurrentVersionExpiration"]["NoncurrentDays"] == 1
    abort = rules["abort-incomplete-multipart-uploads"]["AbortIncompleteMultipartUpload"]
    assert abort == {"DaysAfterInitiation": 1}


def test_drifted_configuration_is_put_back(settings):
    s3 = _s3()
    s3.put_bucket_cors(
        Bucket=settings.FXFER_BUCKET,
        CORSConfiguration={"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["GET", "PUT"]}]},
    )
    s3.delete_bucket_policy(Bucket=settings.FXFER_BUCKET)
    steps = {s.resource: s.action for s in provision()}
    assert steps[f"s3 cors {settings.FXFER_BUCKET}"] == "updated"
    assert steps[f"s3 bucket policy {settings.FXFER_BUCKET}"] == "created"
    assert s3.get_bucket_cors(Bucket=settings.FXFER_BUCKET)["CORSRules"][0]["AllowedOrigins"] == [
        settings.FXFER_BASE_URL
    ]


def test_cors_follows_the_configured_base_url(settings):
    settings.FXFER_BASE_URL = "https://files.example.co.jp"
    steps = {s.resource: s.action for s in provision()}
    assert steps[f"s3 cors {settings.FXFER_BUCKET}"] == "updated"
    rules = _s3().get_bucket_cors(Bucket=settings.FXFER_BUCKET)["CORSRules"]
    assert rules[0]["AllowedOrigins"] == ["https://files.example.co.jp"]


def test_installed_policy_is_the_one_under_test():
    installed = json.loads(_s3().get_bucket_policy(Bucket=settings.FXFER_BUCKET)["Policy"])
    assert installed == bucket_policy(bucket=settings.FXFER_BUCKET, key_arn=_key_arn())


def test_local_sender_is_verified():
    ses = boto3.client("ses", region_name=settings.FXFER_AWS_REGION)
    assert settings.DEFAULT_FROM_EMAIL in ses.list_identities()["Identities"]


# --- SES bounces and complaints, and async events Lambda gives up on -----------------------------------------


def test_ses_publishes_bounces_and_complaints_to_the_stages_topic(settings):
    assert settings.AWS_SES_CONFIGURATION_SET == "fxfer-test"  # django-ses names it on every mail
    ses = boto3.client("ses", region_name=settings.FXFER_AWS_REGION)
    described = ses.describe_configuration_set(
        ConfigurationSetName="fxfer-test", ConfigurationSetAttributeNames=["eventDestinations"]
    )
    (destination,) = [d for d in described["EventDestinations"] if d]
    assert destination["Enabled"] is True
    assert sorted(destination["MatchingEventTypes"]) == ["bounce", "complaint"]
    topic = destination["SNSDestination"]["TopicARN"]
    assert topic.endswith(":fxfer-test-ses-notifications")
    sns = boto3.client("sns", region_name=settings.FXFER_AWS_REGION)
    assert topic in [t["TopicArn"] for t in sns.list_topics()["Topics"]]


def test_failed_async_events_are_kept_encrypted_for_14_days(settings):
    sqs = boto3.client("sqs", region_name=settings.FXFER_AWS_REGION)
    url = sqs.get_queue_url(QueueName="fxfer-test-failed-events")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["MessageRetentionPeriod"] == str(14 * 24 * 3600)
    assert attributes["SqsManagedSseEnabled"].lower() == "true"


def test_without_a_function_nothing_is_routed_and_the_run_says_so():
    steps = {s.resource: s for s in provision()}
    assert steps["lambda async on-failure (no function)"].action == UNCHANGED


def _deploy_function(name: str) -> str:
    import io
    import zipfile

    iam = boto3.client("iam", region_name="us-east-1")
    role = iam.create_role(RoleName="fxfer-test-ZappaLambdaExecutionRole", AssumeRolePolicyDocument="{}")["Role"]
    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("handler.py", "def lambda_handler(event, context):\n    return None\n")
    return boto3.client("lambda", region_name=settings.FXFER_AWS_REGION).create_function(
        FunctionName=name,
        Runtime="python3.13",
        Role=role["Arn"],
        Handler="handler.lambda_handler",
        Code={"ZipFile": package.getvalue()},
    )["FunctionArn"]


def test_the_stages_function_retries_async_events_twice_then_sends_them_to_the_queue(settings):
    settings.FXFER_LAMBDA_FUNCTION = "fxfer-test"
    steps = {s.resource: s for s in provision()}
    assert steps["lambda async on-failure fxfer-test"].action == ACTION_NEEDED  # provisioned before the deploy
    _deploy_function("fxfer-test")

    steps = {s.resource: s for s in provision()}
    assert steps["lambda async on-failure fxfer-test"].action == CREATED
    config = boto3.client("lambda", region_name=settings.FXFER_AWS_REGION).get_function_event_invoke_config(
        FunctionName="fxfer-test"
    )
    assert config["MaximumRetryAttempts"] == 2
    queue = config["DestinationConfig"]["OnFailure"]["Destination"]
    assert queue.startswith("arn:aws:sqs:") and queue.endswith(":fxfer-test-failed-events")
    assert {s.resource: s for s in provision()}["lambda async on-failure fxfer-test"].action == UNCHANGED


def test_a_zappa_sns_source_not_naming_the_topic_is_reported(settings):
    settings.FXFER_LAMBDA_FUNCTION = "fxfer-dev"
    settings.FXFER_STAGE = "dev"  # zappa_settings.json says ACCOUNT_ID where the operator's account goes
    step = {s.resource: s for s in provision()}["zappa sns event source transfers.notifications.on_ses_notification"]
    assert step.action == ACTION_NEEDED
    assert ":fxfer-test-ses-notifications" in step.detail


# --- The bucket policy, attacked. The S3 stand-ins store policies without enforcing them, so the document is
# evaluated here with IAM's rules for the condition operators it uses (an explicit Deny wins).

KEY = "arn:aws:kms:ap-northeast-1:111122223333:key/11111111-2222-3333-4444-555555555555"
OTHER_KEY = "arn:aws:kms:ap-northeast-1:111122223333:key/99999999-8888-7777-6666-555555555555"


def _condition_holds(operator: str, condition: dict, context: dict) -> bool:
    """IAM: a key absent from the request makes a positive operator false, a negated one (…Not…) true, and any
    …IfExists operator true; Null tests presence itself."""
    for key, expected in condition.items():
        present = key in context
        actual = context.get(key)
        if operator == "Null":
            holds = (not present) == (expected == "true")
        elif operator.endswith("IfExists") and not present:
            holds = True
        elif not present:
            holds = "Not" in operator
        elif operator == "Bool":
            holds = str(actual).lower() == expected
        elif operator == "NumericLessThan":
            holds = float(actual) < float(expected)
        elif operator in {"StringNotEquals", "StringNotEqualsIfExists"}:
            holds = actual != expected
        else:
            raise AssertionError(f"operator {operator} not modelled")
        if not holds:
            return False
    return True


def _denied(action: str, resource: str, context: dict) -> bool:
    for statement in bucket_policy(bucket="b", key_arn=KEY)["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        action_matches = any(a in {"s3:*", action} for a in actions)
        resource_matches = any(r == resource or (r.endswith("/*") and resource.startswith(r[:-1])) for r in resources)
        if statement["Effect"] == "Deny" and action_matches and resource_matches:
            if all(_condition_holds(op, cond, context) for op, cond in statement["Condition"].items()):
                return True
    return False


TLS = {"aws:SecureTransport": "true", "s3:TlsVersion": "1.3"}
OBJECT = "arn:aws:s3:::b/files/t/f"


@pytest.mark.parametrize(
    ("why", "action", "context"),
    [
        ("plain HTTP", "s3:GetObject", {"aws:SecureTransport": "false", "s3:TlsVersion": "1.3"}),
        ("TLS 1.1", "s3:GetObject", {"aws:SecureTransport": "true", "s3:TlsVersion": "1.1"}),
        ("SSE-S3 instead of KMS", "s3:PutObject", {**TLS, "s3:x-amz-server-side-encryption": "AES256"}),
        (
            "another KMS key",
            "s3:PutObject",
            {
                **TLS,
                "s3:x-amz-server-side-encryption": "aws:kms",
                "s3:x-amz-server-side-encryption-aws-kms-key-id": OTHER_KEY,
            },
        ),
    ],
)
def test_policy_denies(why, action, context):
    assert _denied(action, OBJECT, context), why


@pytest.mark.parametrize(
    ("why", "action", "context"),
    [
        (
            "a PutObject with our key",
            "s3:PutObject",
            {
                **TLS,
                "s3:x-amz-server-side-encryption": "aws:kms",
                "s3:x-amz-server-side-encryption-aws-kms-key-id": KEY,
            },
        ),
        # UploadPart is authorised as s3:PutObject and carries no SSE header: default encryption applies.
        ("a multipart part without SSE headers", "s3:PutObject", dict(TLS)),
        ("a download over TLS", "s3:GetObject", dict(TLS)),
    ],
)
def test_policy_allows(why, action, context):
    assert not _denied(action, OBJECT, context), why


# --- Monitoring: the alarms topic, the alarms, log retention (issue 14) -----------------------------------------


def _cloudwatch():
    return boto3.client("cloudwatch", region_name=settings.FXFER_AWS_REGION)


def _alarms() -> dict[str, dict]:
    pages = _cloudwatch().get_paginator("describe_alarms").paginate(AlarmNamePrefix="fxfer-test-")
    return {a["AlarmName"]: a for page in pages for a in page["MetricAlarms"]}


@pytest.fixture
def deployed(settings):
    """A stage with a function to watch (locally there is none, and no alarm is made)."""
    settings.FXFER_LAMBDA_FUNCTION = "fxfer-test"
    return {s.resource: s for s in provision()}


def test_locally_without_a_function_no_alarm_is_made():
    steps = {s.resource: s for s in provision()}
    assert steps["cloudwatch alarms"].action == UNCHANGED and "local" in steps["cloudwatch alarms"].detail
    assert _alarms() == {}


def test_a_deployed_stage_gets_its_alarms_each_notifying_the_alarms_topic(deployed):
    topic = deployed["sns topic fxfer-test-alarms"]
    assert topic.action == CREATED and topic.detail.endswith(":fxfer-test-alarms")
    alarms = _alarms()
    assert set(alarms) == {
        "fxfer-test-lambda-errors",
        "fxfer-test-lambda-throttles",
        "fxfer-test-failed-events",
        "fxfer-test-failed-codes-spike",
        "fxfer-test-failed-signins-spike",
        "fxfer-test-ses-bounce-rate",
        "fxfer-test-chain-lag",
        "fxfer-test-job-failed-every-minute",
        "fxfer-test-job-failed-expire-sweep",
        "fxfer-test-job-failed-aggregate-daily",
        "fxfer-test-job-failed-on-object-created",
        "fxfer-test-job-failed-on-ses-notification",
        "fxfer-test-job-missing-every-minute",
        "fxfer-test-job-missing-expire-sweep",
        "fxfer-test-job-missing-aggregate-daily",
    }
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == [topic.detail] and alarm["OKActions"] == [topic.detail]
    errors = alarms["fxfer-test-lambda-errors"]
    assert (errors["Namespace"], errors["MetricName"]) == ("AWS/Lambda", "Errors")
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": "fxfer-test"}]
    queue = alarms["fxfer-test-failed-events"]
    assert (queue["MetricName"], queue["ComparisonOperator"], queue["Threshold"]) == (
        "ApproximateNumberOfMessagesVisible",
        "GreaterThanThreshold",
        0.0,
    )
    assert queue["Dimensions"] == [{"Name": "QueueName", "Value": "fxfer-test-failed-events"}]
    bounces = alarms["fxfer-test-ses-bounce-rate"]
    assert (bounces["Namespace"], bounces["MetricName"], bounces["Threshold"]) == (
        "AWS/SES",
        "Reputation.BounceRate",
        0.04,
    )
    # A job that stops running is an alarm too: no data counts as breaching.
    missing = alarms["fxfer-test-job-missing-every-minute"]
    assert (missing["MetricName"], missing["ComparisonOperator"], missing["TreatMissingData"]) == (
        "JobSucceeded",
        "LessThanThreshold",
        "breaching",
    )


def test_the_operator_is_told_to_subscribe_until_someone_has(deployed):
    step = deployed["sns subscriptions fxfer-test-alarms"]
    topic_arn = deployed["sns topic fxfer-test-alarms"].detail
    assert step.action == ACTION_NEEDED and f"aws sns subscribe --topic-arn {topic_arn}" in step.detail
    out = StringIO()
    call_command("provision", stdout=out)
    assert f"--topic-arn {topic_arn} --protocol email" in out.getvalue()
    sqs = boto3.client("sqs", region_name=settings.FXFER_AWS_REGION)
    inbox = sqs.create_queue(QueueName="operator-inbox")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("sns", region_name=settings.FXFER_AWS_REGION).subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=inbox_arn
    )
    again = {s.resource: s for s in provision()}["sns subscriptions fxfer-test-alarms"]
    assert (again.action, again.detail) == (UNCHANGED, "1 confirmed")


def test_the_alarms_watch_exactly_the_metrics_the_code_emits(deployed, monkeypatch, capsys):
    """An alarm on a metric name or dimension set nobody emits never fires: compare with a real job's EMF."""
    from reports.jobs import every_minute

    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "fxfer-test")
    capsys.readouterr()
    every_minute({}, None)
    emitted = set()
    for line in capsys.readouterr().out.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for names in directive["Dimensions"]:
                dims = tuple(sorted((n, document[n]) for n in names))
                emitted |= {(directive["Namespace"], m["Name"], dims) for m in directive["Metrics"]}
    watched = {
        (a["Namespace"], a["MetricName"], tuple(sorted((d["Name"], d["Value"]) for d in a["Dimensions"])))
        for a in _alarms().values()
    }
    job = ("job", "reports.jobs.every_minute")
    ours = (("service", "fxfer"), ("stage", "test"))
    assert ("fxfer", "JobSucceeded", tuple(sorted((*ours, job)))) in emitted & watched
    assert ("fxfer", "ChainLagSeconds", ours) in emitted & watched


def test_the_function_log_group_keeps_logs_for_the_configured_days(deployed, settings):
    logs = boto3.client("logs", region_name=settings.FXFER_AWS_REGION)

    def retention() -> int:
        [group] = logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/fxfer-test")["logGroups"]
        return group["retentionInDays"]

    assert deployed["log group /aws/lambda/fxfer-test"].action == CREATED
    assert retention() == 90
    settings.FXFER_LOG_RETENTION_DAYS = 30
    step = {s.resource: s for s in provision()}["log group /aws/lambda/fxfer-test"]
    assert (step.action, retention()) == ("updated", 30)
    settings.FXFER_LOG_RETENTION_DAYS = 45  # not a retention CloudWatch offers
    with pytest.raises(ImproperlyConfigured, match="FXFER_LOG_RETENTION_DAYS=45"):
        list(provision())


def test_a_second_run_leaves_the_monitoring_unchanged_and_repairs_a_changed_alarm(deployed):
    monitoring = ("sns topic fxfer-test-alarms", "cloudwatch alarm ", "log group ")
    again = [s for s in provision() if s.resource.startswith(monitoring)]
    assert len(again) == 17 and {s.action for s in again} == {UNCHANGED}
    alarm = _alarms()["fxfer-test-failed-codes-spike"]
    _cloudwatch().put_metric_alarm(
        **{k: alarm[k] for k in ("AlarmName", "Namespace", "MetricName", "Dimensions", "Statistic", "Period")},
        EvaluationPeriods=1,
        Threshold=1000.0,  # someone silenced it by hand
        ComparisonOperator=alarm["ComparisonOperator"],
    )
    step = {s.resource: s for s in provision()}["cloudwatch alarm fxfer-test-failed-codes-spike"]
    assert step.action == "updated"
    repaired = _alarms()["fxfer-test-failed-codes-spike"]
    assert repaired["Threshold"] == 20.0 and repaired["AlarmActions"] == alarm["AlarmActions"]


def _provision_through(kind, *, service: str, operation: str, times: int) -> None:
    """A run that meets the fault (and fails, when it persists), then the operator's next run."""
    with inject(kind, service=service, operation=operation, times=times) as fault:
        try:
            list(provision())
        except Exception:  # the operator sees the error and runs provision again
            assert times == PERSISTENT
    assert fault.fired
    list(provision())


@pytest.mark.parametrize(
    ("service", "operation"),
    [
        ("sns", "CreateTopic"),
        ("cloudwatch", "PutMetricAlarm"),
        ("cloudwatch-logs", "CreateLogGroup"),
        ("cloudwatch-logs", "PutRetentionPolicy"),
    ],
)
@pytest.mark.parametrize(("kind", "times"), [(LOST, 1), (TIMEOUT, PERSISTENT)], ids=["lost", "timeout"])
def test_monitoring_set_up_by_a_run_aws_failed_is_finished_by_the_next_without_duplicates(
    settings, service, operation, kind, times
):
    settings.FXFER_LAMBDA_FUNCTION = "fxfer-test"
    _provision_through(kind, service=service, operation=operation, times=times)
    monitoring = ("sns topic fxfer-test-alarms", "cloudwatch alarm ", "log group ")
    again = [s for s in provision() if s.resource.startswith(monitoring)]
    assert len(again) == 17 and {s.action for s in again} == {UNCHANGED}
    assert len(_alarms()) == 15
    topics = boto3.client("sns", region_name="ap-northeast-1").list_topics()["Topics"]
    assert len([t for t in topics if t["TopicArn"].endswith(":fxfer-test-alarms")]) == 1


# --- the static bucket (fxfer/static.py) ------------------------------------------------------------------------

STATIC_BUCKET = "fxfer-test-static"


def _static_steps(steps) -> list:
    return [s for s in steps if STATIC_BUCKET in s.resource or s.resource == "s3 static bucket"]


def test_without_a_static_bucket_nothing_is_made_and_the_run_says_so():
    assert [(s.resource, s.action) for s in _static_steps(provision())] == [("s3 static bucket", UNCHANGED)]


def test_the_static_bucket_is_private_encrypted_and_readable_by_the_accounts_cloudfront_only(settings):
    settings.FXFER_STATIC_BUCKET = STATIC_BUCKET
    first = _static_steps(provision())
    assert (f"s3 bucket {STATIC_BUCKET}", CREATED) in [(s.resource, s.action) for s in first]
    s3 = _s3()
    block = s3.get_public_access_block(Bucket=STATIC_BUCKET)["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4
    rule = s3.get_bucket_encryption(Bucket=STATIC_BUCKET)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    policy = json.loads(s3.get_bucket_policy(Bucket=STATIC_BUCKET)["Policy"])
    account = _key_arn().split(":")[4]
    assert policy == static_bucket_policy(bucket=STATIC_BUCKET, account_id=account)
    read = next(s for s in policy["Statement"] if s["Effect"] == "Allow")
    assert read["Principal"] == {"Service": "cloudfront.amazonaws.com"} and read["Action"] == "s3:GetObject"
    assert read["Condition"] == {"StringEquals": {"AWS:SourceAccount": account}}
    # Nothing else may read, write or list it: the only Allow is CloudFront's GetObject.
    assert [s["Sid"] for s in policy["Statement"] if s["Effect"] == "Allow"] == ["CloudFrontReadsStaticFiles"]
    assert {s.action for s in _static_steps(provision())} == {UNCHANGED}


def test_the_static_bucket_cannot_be_the_transfer_bucket(settings):
    settings.FXFER_STATIC_BUCKET = settings.FXFER_BUCKET
    with pytest.raises(ImproperlyConfigured, match="must not be the transfer bucket"):
        list(provision())


@pytest.mark.parametrize(
    ("operation", "kind", "times"),
    [("CreateBucket", LOST, 1), ("PutBucketPolicy", TIMEOUT, PERSISTENT), ("PutPublicAccessBlock", LOST, 1)],
)
def test_a_static_bucket_set_up_aws_failed_is_finished_by_the_next_run(settings, operation, kind, times):
    settings.FXFER_STATIC_BUCKET = STATIC_BUCKET
    _provision_through(kind, service="s3", operation=operation, times=times)
    assert {s.action for s in _static_steps(provision())} == {UNCHANGED}
    policy = json.loads(_s3().get_bucket_policy(Bucket=STATIC_BUCKET)["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == ["DenyInsecureTransport", "CloudFrontReadsStaticFiles"]
