"""Run the built Lambda package the way Lambda does: a fresh Python 3.13 with only the unzipped package on
sys.path, calling the function's handler (zappa_settings.json "lambda_handler": fxfer.entry, around Zappa's
`handler.lambda_handler`) (tests/package, bench/coldstart). Never part of the package."""

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devtools.package import PACKAGE_ZIP, PYTHON_VERSION, ROOT, STAGE, clean_environ, stage_settings
from devtools.placeholders import placeholder_production_env

# --- Running the built package the way Lambda does (tests/package, bench/coldstart) -------------------------

LAMBDA_FUNCTION_NAME = f"fxfer-{STAGE}"
REGION = "ap-northeast-1"
# An API Gateway host: Zappa then puts the stage in front of the path, as behind the real API.
API_HOST = "abcde12345.execute-api.ap-northeast-1.amazonaws.com"
# AWS's documentation account id: events carry one; it is never a real account.
EXAMPLE_ACCOUNT = "123456789012"
# Zappa's own handler: the function's handler unless zappa_settings.json names another.
ZAPPA_HANDLER = "handler.lambda_handler"
# An X-Ray trace header as Lambda sets it for a sampled invocation.
TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"

# Runs inside `python -I -S -B`: no site-packages, no PYTHON* variables, no script directory on sys.path, no
# .pyc written (Lambda's /var/task is read-only). Only the unzipped package is put on sys.path.
_HARNESS = r"""
import gc, importlib, json, sys, time

request = json.loads(sys.stdin.read())
sys.path.insert(0, request["package_dir"])


class Context:
    function_name = request["function_name"]
    function_version = "$LATEST"
    invoked_function_arn = request["function_arn"]
    memory_limit_in_mb = request["memory_mb"]
    aws_request_id = "3f6a1c2e-0000-4000-8000-000000000001"
    log_group_name = "/aws/lambda/" + request["function_name"]
    log_stream_name = "local"

    def get_remaining_time_in_millis(self):
        return 30000


def at_depth(extra, call):  # call() beneath `extra` more Python frames (bench/coldstart: STACK_PERIOD)
    return call() if extra <= 0 else at_depth(extra - 1, call)


module_name, function_name = request["handler"].rsplit(".", 1)
depth = request["stack_pad"]
# As Lambda's runtime does (awslambdaric's bootstrap: importlib.import_module).
started, started_cpu = time.perf_counter(), time.process_time()
handler_module = at_depth(depth, lambda: importlib.import_module(module_name))

imported, imported_cpu = time.perf_counter(), time.process_time()
lambda_handler = getattr(handler_module, function_name)
invocations = []
for event in request["events"]:
    collections = sum(generation["collections"] for generation in gc.get_stats())
    began, began_cpu = time.perf_counter(), time.process_time()
    try:
        invocations.append({"response": at_depth(depth, lambda: lambda_handler(event, Context()))})
    except Exception as exc:
        invocations.append({"error": f"{type(exc).__name__}: {exc}"})
    invocations[-1]["seconds"] = time.perf_counter() - began
    invocations[-1]["cpu_seconds"] = time.process_time() - began_cpu
    # The garbage collector: how often it ran during the invocation, and its state after (fxfer.entry).
    invocations[-1]["gc_collections"] = sum(generation["collections"] for generation in gc.get_stats()) - collections
    invocations[-1]["gc_enabled_after"] = gc.isenabled()
    invocations[-1]["gc_frozen_after"] = gc.get_freeze_count()
imports = {name: importlib.import_module(name).__file__ for name in request["imports"]}
outside = sorted(
    m.__file__
    for m in list(sys.modules.values())
    if getattr(m, "__file__", None)
    and not m.__file__.startswith(request["package_dir"])
    and not m.__file__.startswith(sys.base_prefix)
)
result = {
    "import_seconds": imported - started,
    "import_cpu_seconds": imported_cpu - started_cpu,
    "invocations": invocations,
    "imports": imports,
    "modules_outside": outside,
    "sys_path": sys.path,
    "version": list(sys.version_info[:2]),
    "handler_file": handler_module.__file__,
    "zappa_handler_file": sys.modules["handler"].__file__,
}
with open(request["result_path"], "w") as out:
    json.dump(result, out, default=str)
"""


def function_handler() -> str:
    """The handler Zappa gives the Lambda function: the stage's "lambda_handler", or Zappa's default."""
    return stage_settings().get("lambda_handler", ZAPPA_HANDLER)


def base_python() -> Path:
    """The interpreter this venv was made from: Python 3.13 without any venv's site-packages."""
    python = Path(sys.base_prefix) / "bin" / f"python{PYTHON_VERSION}"
    if not python.exists():
        raise SystemExit(f"No Python {PYTHON_VERSION} at the base of this venv ({sys.base_prefix}).")
    return python


def unzip_package(destination: Path, path: Path = PACKAGE_ZIP) -> Path:
    if not path.exists():
        raise SystemExit(f"{path.relative_to(ROOT)} is missing: run `make package` first.")
    with zipfile.ZipFile(path) as archive:
        archive.extractall(destination)
    return destination


@dataclass(frozen=True)
class Invocation:
    import_seconds: float
    import_cpu_seconds: float
    invocations: list[dict]
    imports: dict[str, str]
    modules_outside: list[str]
    sys_path: list[str]
    version: list[int]
    handler_file: str
    zappa_handler_file: str
    log: str

    def response(self, index: int) -> dict:
        invocation = self.invocations[index]
        if "error" in invocation:
            raise AssertionError(f"invocation {index} raised {invocation['error']}\n{self.log}")
        return invocation["response"]


def invoke(
    package_dir: Path,
    events: list[dict],
    *,
    env: dict[str, str],
    imports: tuple[str, ...] = (),
    timeout: float = 120,
    cpu_group: Path | None = None,
    handler: str | None = None,
    stack_pad: int = 0,
) -> Invocation:
    """Call the function's handler (`handler`, by default the stage's, as Lambda would) with each event, in order,
    in one fresh Python process (inside the cgroup `cpu_group` when given: bench/coldstart's CPU share of a Lambda
    memory size), its import and each call `stack_pad` Python frames deeper than the harness's own."""
    with tempfile.TemporaryDirectory(prefix="fxfer-invoke-") as scratch:
        result_path = Path(scratch) / "result.json"
        request = {
            "package_dir": str(package_dir),
            "events": events,
            "imports": list(imports),
            "result_path": str(result_path),
            "function_name": LAMBDA_FUNCTION_NAME,
            "function_arn": f"arn:aws:lambda:{REGION}:{EXAMPLE_ACCOUNT}:function:{LAMBDA_FUNCTION_NAME}",
            "memory_mb": stage_settings()["memory_size"],
            "handler": handler or function_handler(),
            "stack_pad": stack_pad,
        }
        process = subprocess.run(
            [str(base_python()), "-I", "-S", "-B", "-c", _HARNESS],
            input=json.dumps(request),
            cwd=package_dir,  # Lambda's working directory is the task root
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            preexec_fn=(lambda: (cpu_group / "cgroup.procs").write_text(str(os.getpid()))) if cpu_group else None,
        )
        log = process.stdout + process.stderr
        if process.returncode != 0 or not result_path.exists():
            raise RuntimeError(f"the package's process exited with {process.returncode}:\n{log}")
        return Invocation(**json.loads(result_path.read_text()), log=log)


def api_gateway_event(path: str, *, method: str = "GET", headers: dict[str, str] | None = None) -> dict:
    """An API Gateway REST (v1) proxy event, as the `{proxy+}` resource Zappa creates sends it."""
    headers = {
        "Host": API_HOST,
        "User-Agent": "fxfer-package-test",
        "Accept": "*/*",
        "X-Forwarded-For": "203.0.113.10",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
        **(headers or {}),
    }
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": f"/{STAGE}{path}",
            "stage": STAGE,
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "identity": {"sourceIp": "203.0.113.10", "userAgent": headers["User-Agent"]},
            "domainName": API_HOST,
            "apiId": API_HOST.split(".", 1)[0],
        },
        "body": None,
        "isBase64Encoded": False,
    }


def scheduled_event(function: str, *, time: str) -> dict:
    """The EventBridge event of the rule Zappa creates for `function` (named the way Zappa names it)."""
    from zappa.core import Zappa

    entry = next(e for e in stage_settings()["events"] if e["function"] == function)
    # get_scheduled_event_name uses no instance state: skip Zappa's constructor, which builds AWS clients.
    rule = Zappa.__new__(Zappa).get_scheduled_event_name(entry, function, LAMBDA_FUNCTION_NAME)
    return {
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": EXAMPLE_ACCOUNT,
        "time": time,
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{EXAMPLE_ACCOUNT}:rule/{rule}"],
        "detail": {},
    }


def s3_object_created_event(*, bucket: str, key: str, size: int) -> dict:
    """An S3 ObjectCreated notification as S3 delivers it to the function (`key` URL-encoded, as S3 does)."""
    from urllib.parse import quote_plus

    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventTime": "2026-11-27T03:04:05.000Z",
                "eventName": "ObjectCreated:Post",
                "requestParameters": {"sourceIPAddress": "203.0.113.20"},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    # Zappa names the bucket notification after the function (S3EventSource._make_notification_id).
                    "configurationId": LAMBDA_FUNCTION_NAME,
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": quote_plus(key, safe="/"), "size": size, "sequencer": "0062E99A88DC407460"},
                },
            }
        ]
    }


@dataclass(frozen=True)
class StandIns:
    """A provisioned moto server for the package, and the environment a Lambda process gets with it."""

    url: str
    bucket: str
    environment: dict[str, str]  # required variables zappa_settings.json does not set (none, once it sets all)
    parameters: dict[str, str]  # the stage's SSM parameters (the secrets): {name: value}
    parameter_path: str  # "/fxfer/dev/"

    def lambda_env(self, package_dir: Path, *, xray_port: int | None = None) -> dict[str, str]:
        """The variables Lambda sets, fake credentials, and every AWS endpoint pointing at the stand-in.
        No secret is here: the function reads them from SSM Parameter Store, as in AWS."""
        env = {
            "PATH": os.defpath,
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            "LAMBDA_TASK_ROOT": str(package_dir),
            "AWS_LAMBDA_FUNCTION_NAME": LAMBDA_FUNCTION_NAME,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(stage_settings()["memory_size"]),
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_SESSION_TOKEN": "test",
            # Every AWS client goes to the stand-in, never to AWS.
            "AWS_ENDPOINT_URL": self.url,
            **_endpoints(self.url),
            **self.environment,
        }
        if xray_port:
            env |= {"AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{xray_port}", "_X_AMZN_TRACE_ID": TRACE_HEADER}
        return env

    def ssm(self):
        import boto3

        from devtools import stack

        return boto3.client(
            "ssm",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=stack.FAKE_AWS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=stack.FAKE_AWS["AWS_SECRET_ACCESS_KEY"],
        )

    def put_parameters(self) -> None:
        """The stage's parameters as docs/deploy.md step 6 puts them: keys as SecureString, certificates as String."""
        ssm = self.ssm()
        for name, value in self.parameters.items():
            kind = "String" if "CERT" in name else "SecureString"
            ssm.put_parameter(Name=f"{self.parameter_path}{name}", Value=value, Type=kind, Overwrite=True)


def _endpoints(url: str) -> dict[str, str]:
    services = ("DYNAMODB", "S3", "KMS", "SES", "SNS", "SQS", "LAMBDA", "CLOUDWATCH", "LOGS", "SSM")
    return {f"FXFER_{service}_ENDPOINT": url for service in services}


def _provision(env: dict[str, str]) -> None:
    """`manage.py provision` under production settings, quietly unless it fails."""
    process = subprocess.run(
        [sys.executable, "manage.py", "provision"],
        cwd=ROOT,
        env={**clean_environ(), **env, "DJANGO_SETTINGS_MODULE": "fxfer.settings.production"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if process.returncode != 0:
        raise RuntimeError(f"provision failed:\n{process.stdout}{process.stderr}")


@contextlib.contextmanager
def stand_ins() -> Iterator[StandIns]:
    """moto on a free loopback port, provisioned for the `dev` stage with the package's own settings, and the
    stage's SSM parameters holding the secrets (placeholders). Stopped on exit."""
    from devtools import stack
    from devtools.placeholders import secret_production_names

    stage = stage_settings()
    app_env = stage["environment_variables"]
    placeholders = placeholder_production_env()
    secret_names = set(secret_production_names())
    environment = {
        **{k: v for k, v in placeholders.items() if k not in app_env and k not in secret_names},
        # API Gateway's own host: the events below come to it (an operator lists it until the custom domain).
        "FXFER_EXTRA_HOSTS": API_HOST,
        # The malware scan's local stand-in (moto has no GuardDuty Malware Protection): provision sets up no plan,
        # and the function scans as `make run` and the tests do.
        "FXFER_SCANNER": "eicar",
    }
    with stack.moto_server(stack.free_port()) as url:
        # AWS_ENDPOINT_URL: a service without an FXFER_*_ENDPOINT setting goes to the stand-in too, never to AWS.
        _provision(
            {**stack.FAKE_AWS, "AWS_ENDPOINT_URL": url, **_endpoints(url), **placeholders, **environment, **app_env}
        )
        stand_in = StandIns(
            url=url,
            bucket=app_env["FXFER_BUCKET"],
            environment=environment,
            parameters={name: placeholders[name] for name in sorted(secret_names)},
            parameter_path=f"/fxfer/{app_env['FXFER_STAGE']}/",
        )
        stand_in.put_parameters()
        yield stand_in
