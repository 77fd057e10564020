"""Every AWS action the application performs, checked against the Lambda role's policy (a pytest plugin, loaded
by tests/conftest.py in the fast tier).

botocore's `BaseClient._make_api_call` (every client call, PynamoDB's and django-ses's too) and S3's presigning
(`generate_presigned_url`, `generate_presigned_post`: the browser's request is authorised as the role that signed
it) are wrapped. A call counts when it is made *by application code*: the first stack frame outside the libraries
(botocore, boto3, pynamodb, django-ses, Django, the standard library: anything not in this repository's sources) is
in fxfer/, transfers/, reports/ or accounts/, and no frame on the stack is operator-only code. Calls from tests,
fixtures and devtools (the moto set-up, the local stand-ins) do not count, nor does `fxfer/provisioning.py`
(`manage.py provision` runs with the operator's credentials, not the role's). Every other management command
calls the same services as the jobs and the admin pages, and may run as the role (`zappa manage <stage> ...`).

Each call becomes one or more IAM requests (`requests_for`): its action and the resource ARN from its
parameters (TableName/IndexName, each item of a transaction, Bucket/Key, KeyId, Source, QueueUrl), plus what S3
asks KMS on the role's behalf for an SSE-KMS object (GenerateDataKey to write, Decrypt to read).

(a) A call the policy does not allow fails the test that made it, naming the call and its caller (file:line), as
    tests/logleaks.py fails a test that logged a secret.
(b) After a complete fast-tier run (`make test-fast`: every test collected, none failed), every action the policy
    grants must have been called at least once, unless `UNCALLED_IN_TESTS` below explains why the suite cannot
    make it. Under pytest-xdist each worker writes what it saw to a file; the controller merges the files at the
    end of the session. A grant without a caller fails the session.

tests/fxfer/test_iam_policy.py proves both checks fail when they should.

FXFER_AWSCALLS_OUTPUT=<file> writes every distinct call (action, resource, condition keys, API call, caller) there
at the end of the session; FXFER_AWSCALLS_RECORD_ONLY=1 records without checking (to see what new code calls).
"""

import email.utils
import fnmatch
import functools
import json
import os
import re
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APP_PACKAGES = ("fxfer", "transfers", "reports", "accounts")
# Operator-only code: its calls are made with the operator's credentials, not the role's.
OPERATOR_ONLY = ("fxfer/provisioning.py", "fxfer/management/commands/provision.py")
# The moto account: ARNs the recorder builds and the policy it checks them against use the same one.
ACCOUNT_ID = "123456789012"
# Statements of the policy (by Sid) whose callers the fast tier cannot run, each with the reason.
UNCALLED_IN_TESTS: dict[str, str] = {
    # The Lambda runtime writes the function's logs and traces with the role's credentials, not our code.
    "OwnLogGroup": "the Lambda runtime writes stdout to the function's log group",
    "XRayTraces": "the Lambda runtime and the X-Ray SDK send segments only on Lambda with active tracing",
    # The Lambda service sends an async event that failed its retries to the on-failure queue, as the role.
    "OnFailureDestinationSendsFailedEvents": "the Lambda service, not our code, sends the failed event",
}
# Set by the controller; xdist workers (spawned after pytest_configure) inherit it and write their records there.
_DIR_VARIABLE = "FXFER_AWSCALLS_DIR"
# The fast tier as the Makefile runs it (test-fast): only then is "every grant has a caller" meaningful.
FAST_TIER_MARKERS = "not integration and not package and not browser"


@dataclass(frozen=True)
class Call:
    """One IAM request the application made."""

    action: str  # "dynamodb:Query"
    resource: str  # an ARN
    context: tuple  # ((condition key, value), ...) that the request carries
    operation: str  # the API call it came from, "dynamodb.TransactWriteItems", "s3.presign:get_object"
    caller: str  # file:line of the first application frame


# --- from an API call to the IAM requests it makes -------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """What IAM authorises: an action on a resource, with the condition keys the request carries."""

    action: str
    resource: str
    context: dict = field(default_factory=dict, hash=False, compare=False)


# S3 operations whose IAM action is not "s3:<operation>" (the Service Authorization Reference).
_S3_ACTIONS = {
    "HeadObject": "s3:GetObject",
    "HeadBucket": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
    "ListObjectsV2": "s3:ListBucket",
    "ListObjectVersions": "s3:ListBucketVersions",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
    "ListParts": "s3:ListMultipartUploadParts",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
}
# Operations on a version (VersionId given) need the action's Version form.
_S3_VERSION_ACTIONS = {
    "s3:GetObject": "s3:GetObjectVersion",
    "s3:DeleteObject": "s3:DeleteObjectVersion",
    "s3:GetObjectTagging": "s3:GetObjectVersionTagging",
}
# What S3 asks KMS, as the caller, for an object under SSE-KMS (bucket default encryption): a data key to write,
# a decryption to read; a multipart upload needs both (S3 decrypts the upload's data key for each part).
_S3_KMS = {
    "PutObject": ("kms:GenerateDataKey",),
    "CreateMultipartUpload": ("kms:GenerateDataKey", "kms:Decrypt"),
    "UploadPart": ("kms:GenerateDataKey", "kms:Decrypt"),
    "CompleteMultipartUpload": ("kms:GenerateDataKey", "kms:Decrypt"),
    "GetObject": ("kms:Decrypt",),
}
_DYNAMODB_TRANSACT = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
    "Get": "dynamodb:GetItem",
}
_IAM_PREFIX = {"sesv2": "ses"}


def requests_for(service: str, operation: str, params: dict, *, region: str, account_id: str) -> list[Request]:
    """The IAM requests one API call makes (a transaction: one per item; an SSE-KMS write: S3's KMS call too)."""
    from django.conf import settings

    if service == "dynamodb":
        table = f"arn:aws:dynamodb:{region}:{account_id}:table/"
        if operation in {"TransactWriteItems", "TransactGetItems"}:
            found = []
            for item in params.get("TransactItems", []):
                (kind, body), *_ = item.items()
                context = {**_update_context(body), "dynamodb:EnclosingOperation": (operation,)}
                found.append(Request(_DYNAMODB_TRANSACT[kind], table + body["TableName"], context))
            return found
        if operation in {"BatchGetItem", "BatchWriteItem"}:
            return [Request(f"dynamodb:{operation}", table + name) for name in params.get("RequestItems", {})]
        resource = table + params.get("TableName", "*")
        if params.get("IndexName"):
            resource += f"/index/{params['IndexName']}"
        return [Request(f"dynamodb:{operation}", resource, _update_context(params))]
    if service == "s3":
        action = _S3_ACTIONS.get(operation, f"s3:{operation}")
        if params.get("VersionId") and action in _S3_VERSION_ACTIONS:
            action = _S3_VERSION_ACTIONS[action]
        resource = f"arn:aws:s3:::{params.get('Bucket', '*')}"
        if "Key" in params:
            resource += f"/{params['Key']}"
        context = {"s3:prefix": params.get("Prefix", "")} if action.startswith("s3:ListBucket") else {}
        found = [Request(action, resource, context)]
        for kms_action in _S3_KMS.get(operation, ()):
            found.append(_kms_request(kms_action, settings.FXFER_KMS_KEY_ID, region, account_id, via="s3"))
        return found
    if service == "kms":
        return [_kms_request(f"kms:{operation}", params.get("KeyId", "*"), region, account_id)]
    if service in {"ses", "sesv2"}:
        if operation not in {"SendRawEmail", "SendEmail"}:
            return [Request(f"ses:{operation}", "*")]  # GetSendQuota and the like have no resource
        source = params.get("Source") or params.get("FromEmailAddress") or ""
        address = email.utils.parseaddr(source)[1].lower()
        identity = f"arn:aws:ses:{region}:{account_id}:identity/{address.rpartition('@')[2]}"
        found = [Request(f"ses:{operation}", identity, {"ses:FromAddress": address})]
        configuration_set = getattr(settings, "AWS_SES_CONFIGURATION_SET", None)
        if configuration_set:
            arn = f"arn:aws:ses:{region}:{account_id}:configuration-set/{configuration_set}"
            found.append(Request(f"ses:{operation}", arn, {"ses:FromAddress": address}))
        return found
    if service == "sqs":
        if params.get("QueueUrl"):
            name = params["QueueUrl"].rstrip("/").rsplit("/", 1)[-1]
        else:
            name = params.get("QueueName", "*")
        return [Request(f"sqs:{operation}", f"arn:aws:sqs:{region}:{account_id}:{name}")]
    if service == "ssm":
        parameters = f"arn:aws:ssm:{region}:{account_id}:parameter"
        return [Request(f"ssm:{operation}", f"{parameters}{name}") for name in params.get("Names", [])]
    return [Request(f"{_IAM_PREFIX.get(service, service)}:{operation}", "*")]


def _update_context(params: dict) -> dict:
    """dynamodb:Attributes of an update: the top-level attributes it names (its key, its update expression and,
    to be safe, its condition expression)."""
    expression = params.get("UpdateExpression")
    if not expression:
        return {}
    names = params.get("ExpressionAttributeNames") or {}
    attributes = set(params.get("Key") or {})
    for text in (expression, params.get("ConditionExpression") or ""):
        text = re.sub(r"'[^']*'|:[A-Za-z0-9_]+", " ", text)  # values are not attributes
        for word in re.findall(r"#[A-Za-z0-9_]+|[A-Za-z_][A-Za-z0-9_]*(?=\s*(?:[=<>,.)\[]|\s|$))", text):
            if word.startswith("#"):
                attributes.add(names.get(word, word))
            elif word.upper() not in _UPDATE_WORDS:
                attributes.add(word)
    return {"dynamodb:Attributes": tuple(sorted(attributes))}


_UPDATE_WORDS = {
    "SET", "REMOVE", "ADD", "DELETE", "AND", "OR", "NOT", "BETWEEN", "IN",
    "IF_NOT_EXISTS", "LIST_APPEND", "ATTRIBUTE_EXISTS", "ATTRIBUTE_NOT_EXISTS", "ATTRIBUTE_TYPE", "BEGINS_WITH",
    "CONTAINS", "SIZE",
}  # fmt: skip


def _kms_request(action: str, key_id: str, region: str, account_id: str, *, via: str | None = None) -> Request:
    context = {}
    if via:
        context["kms:ViaService"] = f"{via}.{region}.amazonaws.com"
    if key_id.startswith("alias/"):
        context["kms:ResourceAliases"] = (key_id,)
        # IAM authorises the key the alias points at; its id is moto's, so the alias stands for it.
        return Request(action, f"arn:aws:kms:{region}:{account_id}:key/({key_id})", context)
    if key_id.startswith("arn:aws:kms:"):
        return Request(action, key_id, context)
    return Request(action, f"arn:aws:kms:{region}:{account_id}:key/{key_id}", context)


# --- a small evaluator of the policy's statements --------------------------------------------------------------


def _matches(pattern: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value, pattern)


def _listed(value) -> list:
    return value if isinstance(value, list) else [value]


# Condition keys the recorder always derives where AWS sets them: their absence means what it means to IAM (a
# plain UpdateItem has no enclosing transaction; KMS called directly has no ViaService). Any other key it cannot
# know (set by AWS from state, not from the call) is taken to hold when absent.
KNOWN_KEYS = frozenset({"dynamodb:EnclosingOperation", "dynamodb:Attributes", "kms:ViaService", "s3:prefix"})


def _conditions_hold(condition: dict, context: dict) -> bool:
    """The operators this policy uses, with IAM's rules for an absent key (ForAllValues holds, the rest fail)
    for the keys in KNOWN_KEYS."""
    for operator, keys in condition.items():
        for key, expected in keys.items():
            if key not in context:
                if key in KNOWN_KEYS and not operator.startswith("ForAllValues:"):
                    return False
                continue
            actual = context[key]
            values = list(actual) if isinstance(actual, tuple | list) else [actual]
            wanted = _listed(expected)
            if operator in {"StringEquals", "ForAnyValue:StringEquals"}:
                ok = any(v in wanted for v in values)
            elif operator in {"StringLike", "ForAnyValue:StringLike"}:
                ok = any(_matches(w, v) for v in values for w in wanted)
            elif operator == "ForAllValues:StringEquals":
                ok = all(v in wanted for v in values)
            elif operator == "ForAllValues:StringLike":
                ok = all(any(_matches(w, v) for w in wanted) for v in values)
            else:
                raise ValueError(f"the evaluator does not know the condition operator {operator}")
            if not ok:
                return False
    return True


def _statement_allows(statement: dict, request: Request) -> bool:
    return (
        any(_matches(a, request.action) for a in _listed(statement["Action"]))
        and any(_matches(r, request.resource) for r in _listed(statement["Resource"]))
        and _conditions_hold(statement.get("Condition", {}), request.context)
    )


def allows(policy: dict, request: Request) -> bool:
    """Whether the policy allows the request: some Allow statement matches, and no Deny statement does."""
    statements = policy["Statement"]
    if any(s["Effect"] == "Deny" and _statement_allows(s, request) for s in statements):
        return False
    return any(s["Effect"] == "Allow" and _statement_allows(s, request) for s in statements)


def unused_grants(policy: dict, requests: list[Request], *, exempt: dict) -> list[str]:
    """Each grant of an Allow statement that no request used: "<Sid>: <action>" for an action no allowed request
    had, "<Sid>: <resource>" for a resource none touched. Statements whose Sid `exempt` names are left out."""
    unused = []
    for statement in policy["Statement"]:
        if statement["Effect"] != "Allow" or statement["Sid"] in exempt:
            continue
        used = [r for r in requests if _statement_allows(statement, r)]
        for action in _listed(statement["Action"]):
            if not any(_matches(action, r.action) for r in used):
                unused.append(f"{statement['Sid']}: {action}")
        for resource in _listed(statement["Resource"]):
            if not any(_matches(resource, r.resource) for r in used):
                unused.append(f"{statement['Sid']}: {resource}")
    return unused


# --- which code made the call ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _relative(filename: str) -> str | None:
    """The path inside this repository's sources, or None for a library, the standard library or a venv."""
    try:
        path = Path(filename).resolve().relative_to(ROOT)
    except ValueError:
        return None
    if path.parts and (path.parts[0].startswith(".venv") or path.parts[0].startswith(".")):
        return None
    return path.as_posix()


def application_caller(frame) -> str | None:
    """file:line of the application frame that made the AWS call `frame` is inside, or None when the call is
    not the application's (made by a test, a fixture, devtools, or operator-only code anywhere on the stack)."""
    caller = None
    while frame is not None:
        path = _relative(frame.f_code.co_filename)
        if path is not None:
            if path in OPERATOR_ONLY:
                return None
            if caller is None:
                if path.split("/", 1)[0] not in APP_PACKAGES or path == "tests/awscalls.py":
                    return None
                caller = f"{path}:{frame.f_lineno}"
        frame = frame.f_back
    return caller


# --- recording -------------------------------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.calls: dict[tuple, Call] = {}  # one per (action, resource, caller): the first seen
        self.denied: list[str] = []  # since the last test's check

    def record(self, service: str, operation: str, params: dict, *, presign: str | None = None) -> None:
        caller = application_caller(sys._getframe(2))
        if caller is None:
            return
        from django.conf import settings

        region = settings.FXFER_AWS_REGION
        requests = requests_for(service, operation, params, region=region, account_id=ACCOUNT_ID)
        policy = _policy(settings)
        label = f"{service}.{f'presign:{presign}' if presign else operation}"
        for request in requests:
            call = Call(
                action=request.action,
                resource=request.resource,
                context=tuple(sorted(request.context.items())),
                operation=label,
                caller=caller,
            )
            self.calls.setdefault((call.action, _family(call.resource), call.caller), call)
            if policy is not None and not allows(policy, request):
                self.denied.append(describe(call))

    def take_denied(self) -> list[str]:
        denied, self.denied = self.denied, []
        return denied


RECORDER = Recorder()


def _family(resource: str) -> str:
    """Objects of one prefix count as one resource when deduplicating (every test makes new file ids)."""
    if resource.startswith("arn:aws:s3:::") and resource.count("/") > 1:
        return resource.split("/", 2)[0] + "/" + resource.split("/", 2)[1] + "/*"
    return resource


def describe(call: Call) -> str:
    context = "".join(f" {k}={v}" for k, v in call.context)
    return f"{call.action} on {call.resource}{context} ({call.operation}) from {call.caller}"


@functools.lru_cache(maxsize=16)
def _policy_for(stage, region, bucket, kms_key, from_address, configuration_set, failed_queue, function) -> dict:
    from fxfer import iam

    return iam.lambda_policy(
        stage=stage,
        account_id=ACCOUNT_ID,
        region=region,
        bucket=bucket,
        kms_key=kms_key,
        from_address=from_address,
        configuration_set=configuration_set,
        failed_events_queue=failed_queue,
        function_name=function or None,
    )


def _policy(settings) -> dict | None:
    """The policy for the settings the application runs with now (a test may change the bucket, say)."""
    if os.environ.get("FXFER_AWSCALLS_RECORD_ONLY"):
        return None
    return _policy_for(
        settings.FXFER_STAGE,
        settings.FXFER_AWS_REGION,
        settings.FXFER_BUCKET,
        settings.FXFER_KMS_KEY_ID,
        settings.DEFAULT_FROM_EMAIL,
        settings.AWS_SES_CONFIGURATION_SET,
        settings.FXFER_FAILED_EVENTS_QUEUE,
        settings.FXFER_LAMBDA_FUNCTION,
    )


def _wrap_api_call():
    from botocore.client import BaseClient

    original = BaseClient._make_api_call
    if getattr(original, "__fxfer_awscalls__", False):
        return

    @functools.wraps(original)
    def _make_api_call(self, operation_name, api_params):
        RECORDER.record(self.meta.service_model.service_name, operation_name, api_params)
        return original(self, operation_name, api_params)

    _make_api_call.__fxfer_awscalls__ = True
    BaseClient._make_api_call = _make_api_call


def _wrap_presigning():
    """S3 client classes get these functions when botocore builds them (botocore.signers.add_generate_presigned_*
    reads the module's globals then): replace them before any client is made."""
    from botocore import signers

    if getattr(signers.generate_presigned_url, "__fxfer_awscalls__", False):
        return
    presign_url, presign_post = signers.generate_presigned_url, signers.generate_presigned_post

    @functools.wraps(presign_url)
    def generate_presigned_url(self, ClientMethod, Params=None, *args, **kwargs):
        operation = self.meta.method_to_api_mapping.get(ClientMethod, ClientMethod)
        RECORDER.record(self.meta.service_model.service_name, operation, Params or {}, presign=ClientMethod)
        return presign_url(self, ClientMethod, Params, *args, **kwargs)

    @functools.wraps(presign_post)
    def generate_presigned_post(self, Bucket, Key, *args, **kwargs):
        params = {"Bucket": Bucket, "Key": Key}
        RECORDER.record(self.meta.service_model.service_name, "PutObject", params, presign="post")
        return presign_post(self, Bucket, Key, *args, **kwargs)

    generate_presigned_url.__fxfer_awscalls__ = generate_presigned_post.__fxfer_awscalls__ = True
    signers.generate_presigned_url = generate_presigned_url
    signers.generate_presigned_post = generate_presigned_post


# --- the session-end comparison --------------------------------------------------------------------------------


def load(directory: Path) -> list[Call]:
    calls: dict[tuple, Call] = {}
    for path in sorted(directory.glob("*.json")):
        for item in json.loads(path.read_text()):
            call = Call(**{**item, "context": tuple(tuple(pair) for pair in item["context"])})
            calls.setdefault((call.action, _family(call.resource), call.caller), call)
    return list(calls.values())


def save(directory: Path, name: str, calls) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.json").write_text(json.dumps([asdict(c) for c in calls], indent=0))


def uncalled_grants(policy: dict, calls: list[Call]) -> list[str]:
    """Each grant that no recorded call used and UNCALLED_IN_TESTS does not explain."""
    requests = [Request(action=c.action, resource=c.resource, context=dict(c.context)) for c in calls]
    return unused_grants(policy, requests, exempt=UNCALLED_IN_TESTS)


def _complete_fast_tier(session) -> tuple[bool, str]:
    """Whether this session ran the whole fast tier, so a grant nobody called is a finding, not a subset."""
    config = session.config
    if session.testsfailed:
        return False, f"{session.testsfailed} test(s) failed"
    if session.shouldstop or session.shouldfail:
        return False, "the run stopped early"
    options = config.option
    if (options.markexpr or "") != FAST_TIER_MARKERS:
        return False, "not the fast tier's marker expression"
    if options.keyword or getattr(options, "deselect", None) or getattr(options, "lf", False):
        return False, "a selection of tests"
    if config.args_source != pytest.Config.ArgsSource.TESTPATHS:
        return False, "a selection of test files"
    return True, ""


class Plugin:
    def __init__(self, config) -> None:
        self.config = config
        self.worker = getattr(config, "workerinput", {}).get("workerid")
        if self.worker is None and _DIR_VARIABLE not in os.environ:
            os.environ[_DIR_VARIABLE] = tempfile.mkdtemp(prefix="fxfer-awscalls-")
            self.owns_directory = True
        else:
            self.owns_directory = False
        self.directory = Path(os.environ[_DIR_VARIABLE])
        self.lines: list[str] = []

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        if call.when != "teardown":
            return
        denied = RECORDER.take_denied()
        report = outcome.get_result()
        if denied and report.outcome != "failed":
            report.outcome = "failed"
            report.longrepr = "The Lambda role's policy (fxfer/iam.py) does not allow:\n" + "\n".join(
                sorted(set(denied))
            )

    def pytest_sessionfinish(self, session, exitstatus):
        save(self.directory, self.worker or "controller", RECORDER.calls.values())
        if self.worker is not None:
            return
        calls = load(self.directory)
        complete, why_not = _complete_fast_tier(session)
        output = os.environ.get("FXFER_AWSCALLS_OUTPUT")
        if output:
            Path(output).write_text(json.dumps([asdict(c) for c in calls], indent=1))
        if not complete or os.environ.get("FXFER_AWSCALLS_RECORD_ONLY"):
            why_not = why_not or "recording only"
            self.lines = [f"AWS calls: {len(calls)} distinct calls recorded; grants not compared ({why_not})."]
            return
        from django.conf import settings

        missing = uncalled_grants(_policy(settings), calls)
        actions = sorted({c.action for c in calls})
        self.lines = [f"AWS calls: {len(calls)} distinct calls, {len(actions)} actions: {', '.join(actions)}"]
        if missing:
            self.lines.append(
                "The Lambda role's policy (fxfer/iam.py) grants what no application code called in the fast tier "
                "(remove the grant, or explain it in UNCALLED_IN_TESTS in tests/awscalls.py):"
            )
            self.lines += [f"  {m}" for m in missing]
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if self.owns_directory:
            for path in self.directory.glob("*.json"):
                path.unlink()
            self.directory.rmdir()

    def pytest_terminal_summary(self, terminalreporter):
        for line in self.lines:
            terminalreporter.write_line(line)


def pytest_configure(config):
    _wrap_api_call()
    _wrap_presigning()
    config.pluginmanager.register(Plugin(config), "fxfer-awscalls-session")
