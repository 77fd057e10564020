"""`provision` sets up the malware scan (issue 16): GuardDuty Malware Protection for S3 on the bucket's files/
prefix, tagging each verdict, and the EventBridge rule that hands each verdict to the function in Zappa's command
form. moto has no Malware Protection plans: those calls go through botocore's Stubber on the process's GuardDuty
client (the request shapes are still checked against the service model); EventBridge and Lambda are moto's."""

import json

import boto3
import pytest
from botocore.stub import Stubber

from fxfer import aws
from fxfer.provisioning import ACTION_NEEDED, CREATED, UNCHANGED, UPDATED, provision, scan_result_rule_name
from tests.faults import ERROR, LOST, PERSISTENT, TIMEOUT
from tests.fxfer.test_provisioning import _deploy_function, _provision_through
from transfers import jobs

pytestmark = pytest.mark.fresh_world

PLAN = "guardduty malware protection plan fxfer-test-transfers/files/"
ROLE = "arn:aws:iam::123456789012:role/fxfer-test-guardduty-malware-protection"


@pytest.fixture
def guardduty(settings):
    settings.FXFER_SCANNER = "guardduty"
    settings.FXFER_LAMBDA_FUNCTION = "fxfer-test"
    client = aws.client("guardduty")
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()


def _steps() -> dict:
    return {s.resource: s for s in provision()}


def test_with_the_stand_in_scanner_nothing_is_set_up():
    assert _steps()["guardduty malware protection"].action == UNCHANGED


def test_no_role_yet_says_what_to_do(guardduty):
    guardduty.add_response("list_malware_protection_plans", {"MalwareProtectionPlans": []})
    step = _steps()[PLAN]
    assert step.action == ACTION_NEEDED and "FXFER_GUARDDUTY_ROLE_ARN" in step.detail


def test_the_plan_is_created_on_the_files_prefix_with_tagging_then_left_alone(guardduty, settings):
    settings.FXFER_GUARDDUTY_ROLE_ARN = ROLE
    guardduty.add_response("list_malware_protection_plans", {"MalwareProtectionPlans": []})
    guardduty.add_response(
        "create_malware_protection_plan",
        {"MalwareProtectionPlanId": "plan-1"},
        {
            "ClientToken": "fxfer-test-fxfer-test-transfers",
            "Role": ROLE,
            "ProtectedResource": {"S3Bucket": {"BucketName": settings.FXFER_BUCKET, "ObjectPrefixes": ["files/"]}},
            "Actions": {"Tagging": {"Status": "ENABLED"}},
            "Tags": {"app": "fxfer", "stage": "test"},
        },
    )
    assert _steps()[PLAN].action == CREATED

    plan = {
        "Role": ROLE,
        "ProtectedResource": {"S3Bucket": {"BucketName": settings.FXFER_BUCKET, "ObjectPrefixes": ["files/"]}},
        "Actions": {"Tagging": {"Status": "ENABLED"}},
        "Status": "ACTIVE",
    }
    guardduty.add_response(
        "list_malware_protection_plans",
        {"MalwareProtectionPlans": [{"MalwareProtectionPlanId": "other"}, {"MalwareProtectionPlanId": "plan-1"}]},
    )
    guardduty.add_response(
        "get_malware_protection_plan",
        {**plan, "ProtectedResource": {"S3Bucket": {"BucketName": "another-bucket"}}},
        {"MalwareProtectionPlanId": "other"},
    )
    guardduty.add_response("get_malware_protection_plan", plan, {"MalwareProtectionPlanId": "plan-1"})
    assert _steps()[PLAN].action == UNCHANGED


def test_a_plan_scanning_the_whole_bucket_or_not_tagging_is_put_right(guardduty, settings):
    guardduty.add_response(
        "list_malware_protection_plans", {"MalwareProtectionPlans": [{"MalwareProtectionPlanId": "plan-1"}]}
    )
    guardduty.add_response(
        "get_malware_protection_plan",
        {
            "Role": ROLE,
            "ProtectedResource": {"S3Bucket": {"BucketName": settings.FXFER_BUCKET}},
            "Actions": {"Tagging": {"Status": "DISABLED"}},
        },
    )
    guardduty.add_response(
        "update_malware_protection_plan",
        {},
        {
            "MalwareProtectionPlanId": "plan-1",
            "Actions": {"Tagging": {"Status": "ENABLED"}},
            "ProtectedResource": {"S3Bucket": {"ObjectPrefixes": ["files/"]}},
        },
    )
    assert _steps()[PLAN].action == UPDATED


def test_the_rule_hands_this_buckets_verdicts_to_the_function_as_a_zappa_command(guardduty, settings):
    for _ in range(3):
        guardduty.add_response("list_malware_protection_plans", {"MalwareProtectionPlans": []})
    rule = f"eventbridge rule {scan_result_rule_name()}"
    assert _steps()[rule].action == ACTION_NEEDED  # provisioned before the deploy
    function_arn = _deploy_function("fxfer-test")
    assert _steps()[rule].action == CREATED

    events = boto3.client("events", region_name=settings.FXFER_AWS_REGION)
    described = events.describe_rule(Name=scan_result_rule_name())
    assert json.loads(described["EventPattern"]) == {
        "source": ["aws.guardduty"],
        "detail-type": ["GuardDuty Malware Protection Object Scan Result"],
        "detail": {"s3ObjectDetails": {"bucketName": [settings.FXFER_BUCKET]}},
    }
    [target] = events.list_targets_by_rule(Rule=scan_result_rule_name())["Targets"]
    assert target["Arn"] == function_arn
    template = target["InputTransformer"]["InputTemplate"]
    # What EventBridge makes of a scan result with this template is what the job takes.
    rendered = json.loads(
        template.replace("<detailType>", json.dumps("GuardDuty Malware Protection Object Scan Result")).replace(
            "<detail>", json.dumps({"s3ObjectDetails": {"bucketName": "someone-elses", "objectKey": "x"}})
        )
    )
    assert rendered["command"] == "transfers.jobs.on_scan_result"
    assert jobs.on_scan_result(rendered) == {"outcome": "ignored"}
    policy = json.loads(
        boto3.client("lambda", region_name=settings.FXFER_AWS_REGION).get_policy(FunctionName="fxfer-test")["Policy"]
    )
    assert any(s["Principal"] == {"Service": "events.amazonaws.com"} for s in policy["Statement"])
    assert _steps()[rule].action == UNCHANGED


@pytest.mark.parametrize(
    ("service", "operation", "kind", "times"),
    [
        ("eventbridge", "PutRule", ERROR, PERSISTENT),
        ("eventbridge", "PutTargets", LOST, 1),
        ("eventbridge", "PutTargets", TIMEOUT, PERSISTENT),
        ("lambda", "AddPermission", LOST, 1),
        ("lambda", "AddPermission", TIMEOUT, PERSISTENT),
    ],
    ids=["put-rule-error", "put-targets-lost", "put-targets-timeout", "add-permission-lost", "add-permission-timeout"],
)
def test_a_scan_rule_a_run_aws_failed_is_finished_by_the_next_run(guardduty, settings, service, operation, kind, times):
    for _ in range(3):  # each run asks for the plans (no role here: the plan step only says what to do)
        guardduty.add_response("list_malware_protection_plans", {"MalwareProtectionPlans": []})
    function_arn = _deploy_function("fxfer-test")
    _provision_through(kind, service=service, operation=operation, times=times)

    assert _steps()[f"eventbridge rule {scan_result_rule_name()}"].action == UNCHANGED
    events = boto3.client("events", region_name=settings.FXFER_AWS_REGION)
    [target] = events.list_targets_by_rule(Rule=scan_result_rule_name())["Targets"]
    assert target["Arn"] == function_arn
    policy = json.loads(
        boto3.client("lambda", region_name=settings.FXFER_AWS_REGION).get_policy(FunctionName="fxfer-test")["Policy"]
    )
    # The rule can invoke the function: a rule left without its permission would drop every verdict. (One statement
    # id: AWS refuses a second AddPermission of it; moto keeps a retried one twice.)
    grants = [s for s in policy["Statement"] if s["Principal"] == {"Service": "events.amazonaws.com"}]
    assert {s["Sid"] for s in grants} == {f"{scan_result_rule_name()}-invokes"}
