"""The Lambda role's policy (fxfer/iam.py): what it grants and refuses, the rendered example, and proof that the
comparison with the code's AWS calls (tests/awscalls.py) fails when the two drift apart."""

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from fxfer import iam
from tests import awscalls
from tests.awscalls import Request, allows

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLE = ROOT / "deploy" / "iam" / "lambda-policy.example.json"
TRUST_EXAMPLE = ROOT / "deploy" / "iam" / "lambda-trust-policy.json"
# The rendered example: the placeholder account of AWS's own documentation, and a placeholder sender.
EXAMPLE_ARGS = ["--stage", "prod", "--account", "111122223333", "--region", "ap-northeast-1"]
EXAMPLE_SENDER = "fxfer@example.com"

ACCOUNT, REGION = "111122223333", "ap-northeast-1"
TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/fxfer-prod-"
BUCKET = "arn:aws:s3:::fxfer-prod-transfers"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0f1e2d3c-aaaa-bbbb-cccc-000011112222"
ALIAS = {"kms:ResourceAliases": ("alias/fxfer-prod",)}
VIA_S3 = {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}


@pytest.fixture
def policy():
    return iam.lambda_policy(stage="prod", account_id=ACCOUNT, region=REGION, from_address=EXAMPLE_SENDER)


def _render(*args) -> dict:
    out = StringIO()
    call_command("iam_policy", *args, stdout=out)
    return json.loads(out.getvalue())


def test_the_committed_example_is_what_the_command_prints_now():
    """deploy/iam/ is what an operator reads and pastes: regenerate it when the policy changes
    (`manage.py iam_policy --stage prod --account 111122223333 --region ap-northeast-1 --from-address
    fxfer@example.com > deploy/iam/lambda-policy.example.json`)."""
    assert json.loads(EXAMPLE.read_text()) == _render(*EXAMPLE_ARGS, "--from-address", EXAMPLE_SENDER)
    assert json.loads(TRUST_EXAMPLE.read_text()) == _render(*EXAMPLE_ARGS, "--trust")


def test_the_command_refuses_a_wrong_account_id():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="12 digits"):
        _render("--stage", "prod", "--account", "ACCOUNT_ID")


def test_every_statement_says_why_it_exists_and_fits_iams_inline_quota(policy):
    sids = [s["Sid"] for s in policy["Statement"]]
    assert len(sids) == len(set(sids))
    assert all(len(sid) >= 8 and sid.isalnum() for sid in sids)
    assert iam.size(policy) <= iam.INLINE_POLICY_LIMIT


def test_no_wildcard_actions_and_star_resources_only_where_the_action_takes_no_other(policy):
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in a for a in actions), statement["Sid"]
        if statement["Resource"] == "*":
            assert set(actions) <= {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def test_every_table_of_the_models_is_named_and_nothing_else(policy):
    from fxfer import dynamo

    tables = {m.Meta.table_name.removeprefix(dynamo.table_prefix()) for m in dynamo.all_models()}
    assert set(iam.TABLE_ACTIONS) == tables
    resources = json.dumps([s["Resource"] for s in policy["Statement"] if "dynamodb:" in json.dumps(s["Action"])])
    assert "table/*" not in resources and ":*:" not in resources


def test_the_audit_trail_is_append_only(policy):
    events, links = TABLE + "audit-events", TABLE + "audit-links"
    assert allows(policy, Request("dynamodb:PutItem", events))
    assert allows(policy, Request("dynamodb:PutItem", links))
    for table in (events, links):
        assert not allows(policy, Request("dynamodb:DeleteItem", table))
        assert not allows(policy, Request("dynamodb:BatchWriteItem", table))
    assert not allows(policy, Request("dynamodb:UpdateItem", links, {"dynamodb:Attributes": ("link_id", "hash")}))
    # The chainer, inside its transaction: seq and unchained (its condition reads count).
    chained = {"dynamodb:Attributes": ("count", "event_id", "seq", "unchained")}
    in_transaction = {**chained, "dynamodb:EnclosingOperation": ("TransactWriteItems",)}
    assert allows(policy, Request("dynamodb:UpdateItem", events, in_transaction))
    # A place in the chain is never written outside a transaction...
    assert not allows(policy, Request("dynamodb:UpdateItem", events, chained))
    # ...and no update rewrites what an event says together with its place.
    rewrite = {
        "dynamodb:Attributes": ("action", "event_id", "seq"),
        "dynamodb:EnclosingOperation": ("TransactWriteItems",),
    }
    assert not allows(policy, Request("dynamodb:UpdateItem", events, rewrite))
    # A counted event (one per minute, while unchained).
    counted = {"dynamodb:Attributes": ("action", "count", "event_id", "expires_at", "unchained")}
    assert allows(policy, Request("dynamodb:UpdateItem", events, counted))


def test_s3_only_under_files_and_no_bucket_configuration(policy):
    assert allows(policy, Request("s3:PutObject", f"{BUCKET}/files/abcdefgh/ijklmnop"))
    assert allows(policy, Request("s3:GetObjectVersion", f"{BUCKET}/files/abcdefgh/ijklmnop"))
    assert not allows(policy, Request("s3:PutObject", f"{BUCKET}/other/x"))
    assert not allows(policy, Request("s3:GetObject", "arn:aws:s3:::someone-elses-bucket/files/x"))
    assert allows(policy, Request("s3:ListBucketVersions", BUCKET, {"s3:prefix": "files/ab/cd"}))
    assert not allows(policy, Request("s3:ListBucketVersions", BUCKET, {"s3:prefix": ""}))
    for action in (
        "s3:PutBucketPolicy",
        "s3:DeleteBucketPolicy",
        "s3:PutBucketAcl",
        "s3:PutBucketCORS",
        "s3:PutLifecycleConfiguration",
        "s3:PutEncryptionConfiguration",
        "s3:PutBucketVersioning",
        "s3:PutBucketObjectLockConfiguration",
        "s3:PutBucketPublicAccessBlock",
        "s3:DeleteBucket",
        "s3:PutObjectRetention",
        "s3:BypassGovernanceRetention",
    ):
        assert not allows(policy, Request(action, BUCKET)), action
        assert not allows(policy, Request(action, f"{BUCKET}/files/x/y")), action
    # No remote environment file in S3 any more: the secrets are SSM parameters.
    assert not allows(policy, Request("s3:GetObject", "arn:aws:s3:::fxfer-prod-config/environment.json"))


def test_the_stages_secrets_are_read_from_its_own_ssm_path_only(policy):
    parameters = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter"
    assert allows(policy, Request("ssm:GetParameters", f"{parameters}/fxfer/prod/FXFER_SECRET_KEY"))
    # Another stage's secrets, or anything but reading them:
    assert not allows(policy, Request("ssm:GetParameters", f"{parameters}/fxfer/dev/FXFER_SECRET_KEY"))
    assert not allows(policy, Request("ssm:GetParameters", f"{parameters}/fxfer/prodx/FXFER_SECRET_KEY"))
    for action in ("ssm:PutParameter", "ssm:DeleteParameter", "ssm:GetParametersByPath", "ssm:DescribeParameters"):
        assert not allows(policy, Request(action, f"{parameters}/fxfer/prod/FXFER_SECRET_KEY")), action


def test_kms_only_its_key_and_data_keys_only_through_s3(policy):
    assert allows(policy, Request("kms:GenerateDataKey", KEY, {**ALIAS, **VIA_S3}))
    assert allows(policy, Request("kms:Decrypt", KEY, {**ALIAS, **VIA_S3}))
    assert allows(policy, Request("kms:DescribeKey", KEY, ALIAS))
    # Called directly (no S3 in between), or on another key of the account:
    assert not allows(
        policy, Request("kms:Decrypt", KEY, {**ALIAS, "kms:ViaService": f"lambda.{REGION}.amazonaws.com"})
    )
    assert not allows(policy, Request("kms:Decrypt", KEY, {"kms:ResourceAliases": ("alias/other",), **VIA_S3}))
    for action in ("kms:Encrypt", "kms:ScheduleKeyDeletion", "kms:PutKeyPolicy", "kms:CreateGrant"):
        assert not allows(policy, Request(action, KEY, {**ALIAS, **VIA_S3})), action
    # The conditions are there (the evaluator takes a key the request lacks as satisfied; AWS always sets them).
    statements = {s["Sid"]: s for s in policy["Statement"]}
    condition = statements["FileKeyOnlyThroughS3"]["Condition"]
    assert condition["StringEquals"]["kms:ViaService"] == f"s3.{REGION}.amazonaws.com"
    assert condition["ForAnyValue:StringEquals"]["kms:ResourceAliases"] == ["alias/fxfer-prod"]


def test_ses_only_as_its_sender_through_its_configuration_set(policy):
    identity = f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/example.com"
    configuration_set = f"arn:aws:ses:{REGION}:{ACCOUNT}:configuration-set/fxfer-prod"
    sender = {"ses:FromAddress": EXAMPLE_SENDER}
    assert allows(policy, Request("ses:SendRawEmail", identity, sender))
    assert allows(policy, Request("ses:SendRawEmail", configuration_set, sender))
    assert not allows(policy, Request("ses:SendRawEmail", identity, {"ses:FromAddress": "ceo@example.com"}))
    assert not allows(policy, Request("ses:SendRawEmail", f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/other.com", sender))
    assert not allows(policy, Request("ses:VerifyEmailIdentity", "*"))
    assert not allows(policy, Request("ses:GetSendQuota", "*"))  # django-ses's throttling is off


def test_the_queue_logs_and_traces(policy):
    queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:fxfer-prod-failed-events"
    assert allows(policy, Request("sqs:SendMessage", queue))
    assert allows(policy, Request("sqs:GetQueueAttributes", queue))
    assert not allows(policy, Request("sqs:ReceiveMessage", queue))
    assert not allows(policy, Request("sqs:SendMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:another"))
    group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/fxfer-prod"
    assert allows(policy, Request("logs:PutLogEvents", f"{group}:log-stream:2026/11/30/[$LATEST]abc"))
    assert not allows(
        policy, Request("logs:PutLogEvents", f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/x:*")
    )
    assert not allows(policy, Request("logs:CreateLogGroup", group))
    assert allows(policy, Request("xray:PutTraceSegments", "*"))


# --- the recorder: which calls count, and how a call becomes IAM requests ----------------------------------------


def test_a_transaction_is_authorised_item_by_item():
    params = {
        "TransactItems": [
            {"Put": {"TableName": "fxfer-test-transfers", "Item": {}}},
            {"Update": {"TableName": "fxfer-test-audit-events", "Key": {}, "UpdateExpression": "SET #s = :s REMOVE #u",
                        "ExpressionAttributeNames": {"#s": "seq", "#u": "unchained"}}},
            {"ConditionCheck": {"TableName": "fxfer-test-recipients", "Key": {}}},
            {"Delete": {"TableName": "fxfer-test-one-time-codes", "Key": {}}},
        ]
    }  # fmt: skip
    requests = awscalls.requests_for("dynamodb", "TransactWriteItems", params, region=REGION, account_id=ACCOUNT)
    assert [(r.action, r.resource.rsplit("/", 1)[1]) for r in requests] == [
        ("dynamodb:PutItem", "fxfer-test-transfers"),
        ("dynamodb:UpdateItem", "fxfer-test-audit-events"),
        ("dynamodb:ConditionCheckItem", "fxfer-test-recipients"),
        ("dynamodb:DeleteItem", "fxfer-test-one-time-codes"),
    ]
    assert requests[1].context["dynamodb:EnclosingOperation"] == ("TransactWriteItems",)
    assert requests[1].context["dynamodb:Attributes"] == ("seq", "unchained")


def test_an_sse_kms_write_asks_kms_through_s3(settings):
    params = {"Bucket": "b", "Key": "files/a/b"}
    requests = awscalls.requests_for("s3", "CreateMultipartUpload", params, region=REGION, account_id=ACCOUNT)
    assert [r.action for r in requests] == ["s3:PutObject", "kms:GenerateDataKey", "kms:Decrypt"]
    assert requests[1].context["kms:ViaService"] == f"s3.{REGION}.amazonaws.com"
    assert requests[1].context["kms:ResourceAliases"] == (settings.FXFER_KMS_KEY_ID,)


def test_only_the_applications_own_calls_count():
    namespace = {"caller": awscalls.application_caller, "getframe": sys._getframe}
    for path, expected in [
        ("transfers/storage.py", "transfers/storage.py:2"),
        ("reports/chain.py", "reports/chain.py:2"),
        ("tests/transfers/test_sending.py", None),  # a test or a fixture setting up its world
        ("devtools/stack.py", None),  # the local stand-ins
        ("fxfer/provisioning.py", None),  # `manage.py provision`: the operator's credentials
    ]:
        code = compile("def run():\n    return caller(getframe())\n", str(ROOT / path), "exec")
        exec(code, namespace)  # noqa: S102 - a frame that belongs to `path`
        assert namespace["run"]() == expected, path


# --- proof that the comparison fails ---------------------------------------------------------------------------


def test_a_call_the_policy_does_not_allow_is_named_with_its_caller(settings):
    """Application code (here: code compiled as transfers/storage.py) reads the bucket's policy, which the role
    may not: the recorder names the action, the resource, the call and the line."""
    from fxfer import aws

    namespace = {"s3": aws.client("s3"), "bucket": settings.FXFER_BUCKET}
    code = compile(
        "def run():\n    try:\n        s3.get_bucket_policy(Bucket=bucket)\n    except Exception:\n        pass\n",
        str(ROOT / "transfers" / "storage.py"),
        "exec",
    )
    exec(code, namespace)  # noqa: S102 - a frame that belongs to transfers/storage.py
    awscalls.RECORDER.take_denied()
    namespace["run"]()
    denied = awscalls.RECORDER.take_denied()  # taken, so this test itself does not fail on it
    assert denied == [
        f"s3:GetBucketPolicy on arn:aws:s3:::{settings.FXFER_BUCKET} (s3.GetBucketPolicy) from transfers/storage.py:3"
    ]


def test_the_plugin_fails_the_test_that_made_a_forbidden_call():
    """End to end, in a pytest of its own: the test that made the call fails, and says what and where."""
    case = ROOT / "tests" / "fxfer" / "iam_forbidden_call.py"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "-q", str(case)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        # A session of its own: not this session's directory of recorded calls.
        env={**{k: v for k, v in os.environ.items() if k != "FXFER_AWSCALLS_DIR"}, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "The Lambda role's policy (fxfer/iam.py) does not allow:" in run.stdout
    assert (
        "s3:PutBucketPolicy on arn:aws:s3:::fxfer-test-transfers (s3.PutBucketPolicy) from transfers/storage.py:"
        in (run.stdout)
    )
    # Failed in its teardown report (as tests/logleaks.py fails a test), so pytest counts it as an error.
    assert "1 passed, 1 error" in run.stdout


def test_a_grant_nothing_calls_is_reported(policy):
    calls = [
        awscalls.Call(action="sqs:SendMessage", resource=f"arn:aws:sqs:{REGION}:{ACCOUNT}:fxfer-prod-failed-events",
                      context=(), operation="sqs.SendMessage", caller="x.py:1"),
    ]  # fmt: skip
    extra = {
        "Sid": "NobodyCallsThis",
        "Effect": "Allow",
        "Action": ["sqs:SendMessage", "sqs:PurgeQueue"],
        "Resource": f"arn:aws:sqs:{REGION}:{ACCOUNT}:fxfer-prod-failed-events",
    }
    found = awscalls.uncalled_grants({**policy, "Statement": [*policy["Statement"], extra]}, calls)
    assert "NobodyCallsThis: sqs:PurgeQueue" in found
    assert "NobodyCallsThis: sqs:SendMessage" not in found
    # With nothing called, every grant the suite can make is reported; the allow-list's are not.
    nothing = awscalls.uncalled_grants(policy, [])
    assert "TableTransfers: dynamodb:GetItem" in nothing
    assert not set(nothing) & set(awscalls.UNCALLED_IN_TESTS)


def _session(tmp_path, monkeypatch, *, failed: int = 0, markexpr: str = awscalls.FAST_TIER_MARKERS):
    """The controller's plugin at the end of a session, with its own directory of worker files and no calls."""
    from types import SimpleNamespace

    monkeypatch.setenv("FXFER_AWSCALLS_DIR", str(tmp_path))
    monkeypatch.setattr(awscalls.RECORDER, "calls", {})
    config = SimpleNamespace(
        option=SimpleNamespace(markexpr=markexpr, keyword="", deselect=None, lf=False),
        args_source=pytest.Config.ArgsSource.TESTPATHS,
    )
    plugin = awscalls.Plugin(config)
    session = SimpleNamespace(
        config=config, testsfailed=failed, shouldstop=False, shouldfail=False, exitstatus=pytest.ExitCode.OK
    )
    plugin.pytest_sessionfinish(session, session.exitstatus)
    return plugin, session


def test_a_complete_run_in_which_nothing_used_a_grant_fails(tmp_path, monkeypatch):
    plugin, session = _session(tmp_path, monkeypatch)
    assert session.exitstatus == pytest.ExitCode.TESTS_FAILED
    assert any("grants what no application code called" in line for line in plugin.lines)
    assert "  TableAuditChain: dynamodb:GetItem" in plugin.lines
    assert not any(sid in line for line in plugin.lines for sid in awscalls.UNCALLED_IN_TESTS)


@pytest.mark.parametrize(("failed", "markexpr"), [(1, awscalls.FAST_TIER_MARKERS), (0, "not browser")])
def test_a_partial_run_does_not_compare_grants(tmp_path, monkeypatch, failed, markexpr):
    plugin, session = _session(tmp_path, monkeypatch, failed=failed, markexpr=markexpr)
    assert session.exitstatus == pytest.ExitCode.OK
    assert "grants not compared" in plugin.lines[0]
