"""Build the Lambda package (`make package`): dist/fxfer-<stage>.zip, made by Zappa from a runtime-only venv.

    python -m devtools.package [--stage dev|prod]

The zip carries its stage's Zappa settings (environment, remote_env, event mapping): build one per stage.

1. `.venv-runtime` holds requirements.txt only (a venv with the test tools is over Lambda's 250 MB); it is
   rebuilt when requirements.txt changes (a stamp file), reused otherwise.
2. Django's locales other than en and ja are removed from it (the site speaks those two).
3. collectstatic under production settings, so `staticfiles/` and its manifest ship (it touches no AWS: the
   settings get placeholder values).
4. Bytecode is precompiled with checked hashes: Zappa dates zip entries 1980, so timestamp-based .pyc files
   would look stale and be recompiled on every cold start.
5. `zappa package dev` with the runtime venv active, then the unzipped size is checked against Lambda's limit.

The second half of this module runs the built package the way Lambda does (a fresh Python 3.13 with only
the unzipped package on sys.path, calling Zappa's `handler.lambda_handler`); tests/package and bench/coldstart
use it. Never part of the package itself.
"""

import argparse
import contextlib
import datetime
import functools
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_VENV = ROOT / ".venv-runtime"
RUNTIME_PYTHON = RUNTIME_VENV / "bin" / "python"
REQUIREMENTS = ROOT / "requirements.txt"
STAMP = RUNTIME_VENV / ".requirements.sha256"
STAGE = "dev"
# The package tests and the bench run this stage's zip.
PACKAGE_ZIP = ROOT / "dist" / f"fxfer-{STAGE}.zip"
PRODUCTION_SETTINGS = ROOT / "fxfer" / "settings" / "production.py"
ZAPPA_SETTINGS = ROOT / "zappa_settings.json"

# Lambda's limit on the unzipped function (with its layers): 250 MB.
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
KEPT_LOCALES = frozenset({"en", "ja"})
# Top-level packages of the repository that never ship (zappa_settings.json excludes them too).
NOT_SHIPPED = frozenset({"tests", "devtools", "bench"})
PYTHON_VERSION = "3.13"


def project_packages() -> list[str]:
    """The project's own top-level packages that go into the Lambda package."""
    return sorted(p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name not in NOT_SHIPPED)


def site_packages(venv: Path = RUNTIME_VENV) -> Path:
    return venv / "lib" / f"python{PYTHON_VERSION}" / "site-packages"


def mb(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB"


# --- 1. the runtime venv ------------------------------------------------------------------------------------


def _requirements_stamp() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes() + sys.version.encode()).hexdigest()


def ensure_runtime_venv() -> None:
    """Create `.venv-runtime` from requirements.txt alone; reuse it while requirements.txt is unchanged."""
    stamp = _requirements_stamp()
    if RUNTIME_PYTHON.exists() and STAMP.exists() and STAMP.read_text().strip() == stamp:
        print(f"runtime venv: {RUNTIME_VENV.name} is up to date with requirements.txt")
        return
    print(f"runtime venv: building {RUNTIME_VENV.name} from requirements.txt")
    shutil.rmtree(RUNTIME_VENV, ignore_errors=True)
    # From the dev venv's interpreter: venv uses its base interpreter, the same Python 3.13.
    subprocess.run([sys.executable, "-m", "venv", str(RUNTIME_VENV)], check=True)
    pip = [str(RUNTIME_PYTHON), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "-q", "-r", str(REQUIREMENTS)], check=True)
    subprocess.run([*pip, "check"], check=True, stdout=subprocess.DEVNULL)
    STAMP.write_text(stamp + "\n")


# --- 2. locales ---------------------------------------------------------------------------------------------


def locale_dirs(packages_dir: Path) -> list[Path]:
    """Django's locale directories (django/conf/locale and django/contrib/*/locale) under `packages_dir`."""
    django = packages_dir / "django"
    return [django / "conf" / "locale", *sorted((django / "contrib").glob("*/locale"))]


def prune_locales(packages_dir: Path) -> int:
    """Remove every Django language but en and ja; returns the bytes freed. Idempotent."""
    freed = 0
    for locale in locale_dirs(packages_dir):
        for language in locale.iterdir():
            if language.is_dir() and language.name != "__pycache__" and language.name not in KEPT_LOCALES:
                freed += sum(f.stat().st_size for f in language.rglob("*") if f.is_file())
                shutil.rmtree(language)
    return freed


# --- 3. static files ----------------------------------------------------------------------------------------


def required_production_names() -> list[str]:
    """The names production.py passes to env.required(...), read from the file so the list never drifts."""
    return re.findall(r'env\.required\(\s*"([A-Z0-9_]+)"', PRODUCTION_SETTINGS.read_text())


@functools.cache
def _placeholder_key_and_cert() -> tuple[str, str]:
    """A throwaway RSA key and a self-signed certificate for it (PEM), for PEM-valued variables."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fxfer placeholder")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


def _placeholder(name: str) -> str:
    if "CERT" in name:
        return _placeholder_key_and_cert()[1]
    if "PRIVATE_KEY" in name or (name.endswith("_KEY") and "SAML" in name):
        return _placeholder_key_and_cert()[0]
    if name == "FXFER_BASE_URL":
        return "https://fxfer.example.com"
    if name == "FXFER_STAGE":
        return STAGE
    if name.endswith("_URL"):
        return "https://idp.example.com/saml2/sso"
    if name.endswith("EMAIL"):
        return "fxfer@example.com"
    if name.endswith("ENTITY_ID"):
        return "https://idp.example.com/saml2/metadata"
    return secrets.token_urlsafe(50)


def placeholder_production_env() -> dict[str, str]:
    """{name: placeholder} for every variable production settings require (PEMs are real, throwaway ones)."""
    return {name: _placeholder(name) for name in required_production_names()}


def _clean_environ() -> dict[str, str]:
    """This process's environment without anything that would point Django or AWS clients elsewhere."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FXFER_", "AWS_", "VIRTUAL_ENV", "PYTHON")) and k != "DJANGO_SETTINGS_MODULE"
    }


def collectstatic(stage: str = STAGE) -> None:
    env = {
        **_clean_environ(),
        **placeholder_production_env(),
        **stage_settings(stage)["environment_variables"],
        "DJANGO_SETTINGS_MODULE": "fxfer.settings.production",
    }
    subprocess.run(
        [str(RUNTIME_PYTHON), "manage.py", "collectstatic", "--noinput", "--clear", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    manifest = ROOT / "staticfiles" / "staticfiles.json"
    if not manifest.exists():
        raise SystemExit("collectstatic wrote no staticfiles/staticfiles.json")
    print(f"static files: {len(json.loads(manifest.read_text())['paths'])} collected into staticfiles/")


# --- 4. bytecode --------------------------------------------------------------------------------------------


def _remove_orphan_bytecode(package: Path) -> None:
    """Drop __pycache__ entries whose source is gone, so deleted modules do not ship as bytecode."""
    for pyc in package.rglob("__pycache__/*.pyc"):
        source = pyc.parent.parent / (pyc.name.split(".", 1)[0] + ".py")
        if not source.exists():
            pyc.unlink()


def precompile() -> None:
    """checked-hash .pyc for the runtime venv and the project's packages: valid whatever the zip's dates."""
    targets = [site_packages(), *(ROOT / name for name in project_packages())]
    for package in targets[1:]:
        _remove_orphan_bytecode(package)
    result = subprocess.run(
        [
            str(RUNTIME_PYTHON),
            "-m",
            "compileall",
            "-f",
            "-q",
            "-j",
            "0",
            "--invalidation-mode",
            "checked-hash",
            *map(str, targets),
        ],
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit("compileall failed on a file (see above)")
    print(f"bytecode: checked-hash .pyc for site-packages and {', '.join(project_packages())}")


# --- 5. zappa -----------------------------------------------------------------------------------------------


def stage_settings(stage: str = STAGE) -> dict:
    """A stage of zappa_settings.json with its `extends` chain applied (shallow, as Zappa does)."""
    stages = json.loads(ZAPPA_SETTINGS.read_text())
    settings = dict(stages[stage])
    parent = settings.get("extends")
    if parent:
        settings = {**stage_settings(parent), **settings}
    return settings


def package_zip(stage: str) -> Path:
    return ROOT / "dist" / f"fxfer-{stage}.zip"


def zappa_package(stage: str = STAGE) -> Path:
    output = package_zip(stage)
    output.parent.mkdir(exist_ok=True)
    output.unlink(missing_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="fxfer-zappa-"))
    env = {
        **_clean_environ(),
        "VIRTUAL_ENV": str(RUNTIME_VENV),
        "PATH": f"{RUNTIME_VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "TMPDIR": str(scratch),
    }
    try:
        # --json skips Zappa's "is there a newer Zappa" request; `package` needs no AWS credentials.
        subprocess.run(
            [
                str(RUNTIME_VENV / "bin" / "zappa"),
                "package",
                stage,
                "-o",
                str(output.relative_to(ROOT)),
                "--json",
                "--disable_progress",
            ],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return output


# --- 6. size ------------------------------------------------------------------------------------------------


def package_sizes(path: Path = PACKAGE_ZIP) -> tuple[int, int]:
    """(zipped, unzipped) size in bytes."""
    with zipfile.ZipFile(path) as archive:
        return path.stat().st_size, sum(info.file_size for info in archive.infolist())


def check_size(path: Path = PACKAGE_ZIP) -> None:
    zipped, unzipped = package_sizes(path)
    print(
        f"package: {path.relative_to(ROOT)} {mb(zipped)} zipped, {mb(unzipped)} unzipped "
        f"(Lambda's limit: {mb(LAMBDA_UNZIPPED_LIMIT)} unzipped)"
    )
    if unzipped >= LAMBDA_UNZIPPED_LIMIT:
        raise SystemExit(
            f"The package is {mb(unzipped)} unzipped, over Lambda's {mb(LAMBDA_UNZIPPED_LIMIT)}: "
            "look for test tools or data in requirements.txt."
        )


# --- Running the built package the way Lambda does (tests/package, bench/coldstart) -------------------------

LAMBDA_FUNCTION_NAME = f"fxfer-{STAGE}"
REGION = "ap-northeast-1"
# An API Gateway host: Zappa then puts the stage in front of the path, as behind the real API.
API_HOST = "abcde12345.execute-api.ap-northeast-1.amazonaws.com"
# AWS's documentation account id: events carry one; it is never a real account.
EXAMPLE_ACCOUNT = "123456789012"
# An X-Ray trace header as Lambda sets it for a sampled invocation.
TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"

# Runs inside `python -I -S -B`: no site-packages, no PYTHON* variables, no script directory on sys.path, no
# .pyc written (Lambda's /var/task is read-only). Only the unzipped package is put on sys.path.
_HARNESS = r"""
import importlib, json, sys, time

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


started = time.perf_counter()
import handler

imported = time.perf_counter()
invocations = []
for event in request["events"]:
    began = time.perf_counter()
    try:
        invocations.append({"response": handler.lambda_handler(event, Context())})
    except Exception as exc:
        invocations.append({"error": f"{type(exc).__name__}: {exc}"})
    invocations[-1]["seconds"] = time.perf_counter() - began
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
    "invocations": invocations,
    "imports": imports,
    "modules_outside": outside,
    "sys_path": sys.path,
    "version": list(sys.version_info[:2]),
    "handler_file": handler.__file__,
}
with open(request["result_path"], "w") as out:
    json.dump(result, out, default=str)
"""


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
    invocations: list[dict]
    imports: dict[str, str]
    modules_outside: list[str]
    sys_path: list[str]
    version: list[int]
    handler_file: str
    log: str

    def response(self, index: int) -> dict:
        invocation = self.invocations[index]
        if "error" in invocation:
            raise AssertionError(f"invocation {index} raised {invocation['error']}\n{self.log}")
        return invocation["response"]


def invoke(
    package_dir: Path, events: list[dict], *, env: dict[str, str], imports: tuple[str, ...] = (), timeout: float = 120
) -> Invocation:
    """Call Zappa's handler.lambda_handler with each event, in order, in one fresh Python process."""
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
    remote_env: dict[str, str]  # what the remote environment file (zappa_settings "remote_env") holds
    remote_env_location: tuple[str, str]  # (bucket, key)

    def lambda_env(self, package_dir: Path, *, xray_port: int | None = None) -> dict[str, str]:
        """The variables Lambda sets, fake credentials, and every AWS endpoint pointing at the stand-in.
        No secret is here: the function reads them from the remote environment file, as in AWS."""
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
            # Every AWS client, Zappa's remote_env read included, goes to the stand-in, never to AWS.
            "AWS_ENDPOINT_URL": self.url,
            **_endpoints(self.url),
        }
        if xray_port:
            env |= {"AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{xray_port}", "_X_AMZN_TRACE_ID": TRACE_HEADER}
        return env


def _endpoints(url: str) -> dict[str, str]:
    return {f"FXFER_{service}_ENDPOINT": url for service in ("DYNAMODB", "S3", "KMS", "SES")}


def _provision(env: dict[str, str]) -> None:
    """`manage.py provision` under production settings, quietly unless it fails."""
    process = subprocess.run(
        [sys.executable, "manage.py", "provision"],
        cwd=ROOT,
        env={**_clean_environ(), **env, "DJANGO_SETTINGS_MODULE": "fxfer.settings.production"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if process.returncode != 0:
        raise RuntimeError(f"provision failed:\n{process.stdout}{process.stderr}")


@contextlib.contextmanager
def stand_ins() -> Iterator[StandIns]:
    """moto on a free loopback port, provisioned for the `dev` stage with the package's own settings, and
    the remote environment file holding the secrets (placeholders). Stopped on exit."""
    import boto3

    from devtools import stack

    stage = stage_settings()
    app_env = stage["environment_variables"]
    remote_env = {
        **{k: v for k, v in placeholder_production_env().items() if k not in app_env},
        "FXFER_EXTRA_HOSTS": API_HOST,
    }
    remote_bucket, _, remote_key = stage["remote_env"].removeprefix("s3://").partition("/")
    with stack.moto_server(stack.free_port()) as url:
        _provision({**stack.FAKE_AWS, **_endpoints(url), **remote_env, **app_env})
        s3 = boto3.client(
            "s3",
            endpoint_url=url,
            region_name=REGION,
            aws_access_key_id=stack.FAKE_AWS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=stack.FAKE_AWS["AWS_SECRET_ACCESS_KEY"],
        )
        s3.create_bucket(Bucket=remote_bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_object(Bucket=remote_bucket, Key=remote_key, Body=json.dumps(remote_env).encode())
        yield StandIns(
            url=url,
            bucket=app_env["FXFER_BUCKET"],
            remote_env=remote_env,
            remote_env_location=(remote_bucket, remote_key),
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", default=STAGE, choices=sorted(json.loads(ZAPPA_SETTINGS.read_text())))
    args = parser.parse_args(argv)
    started = time.monotonic()
    ensure_runtime_venv()
    freed = prune_locales(site_packages())
    print(f"locales: Django keeps {', '.join(sorted(KEPT_LOCALES))}" + (f" ({mb(freed)} removed)" if freed else ""))
    collectstatic(args.stage)
    precompile()
    check_size(zappa_package(args.stage))
    print(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
