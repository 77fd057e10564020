"""The built Lambda package (dist/fxfer-dev.zip from `make package`), called through the function's handler
(fxfer.entry around Zappa's own `handler.lambda_handler`) in a fresh Python 3.13 that sees nothing but the unzipped
package, against a moto server provisioned with the package's own settings. The secrets reach it only through SSM
Parameter Store, read on first use, as in AWS."""

import base64
import importlib.metadata
import importlib.util
import json
import re
import socket
import zipfile
from pathlib import Path

import boto3
import pytest

from devtools import lambda_local, package

pytestmark = pytest.mark.package

STAGE = package.stage_settings()
DAILY_JOB_TIME = "2026-11-27T15:10:00Z"  # 00:10 on 28 November in Tokyo: aggregates 27 November
UPLOAD_KEY = "files/0f3a9c1e7b2d4e6f/8c1d2e3f4a5b6c7d"
SCHEDULED = [event["function"] for event in STAGE["events"] if "expression" in event]
# Events of the cold run, in order (the scheduled ones last): the first request of the process is the health check.
HEALTHZ, UPLOAD, STATIC, SAML_METADATA, FIRST_SCHEDULED = range(5)


@pytest.fixture(scope="module")
def archive() -> zipfile.ZipFile:
    if not package.PACKAGE_ZIP.exists():
        pytest.fail("dist/fxfer-dev.zip is missing: run `make package` (make test-package does).")
    with zipfile.ZipFile(package.PACKAGE_ZIP) as archive:
        yield archive


@pytest.fixture(scope="module")
def names(archive) -> list[str]:
    return archive.namelist()


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory) -> Path:
    return lambda_local.unzip_package(tmp_path_factory.mktemp("lambda-task"))


@pytest.fixture(scope="module")
def stand_in():
    with lambda_local.stand_ins() as stand_in:
        yield stand_in


@pytest.fixture(scope="module")
def xray_daemon():
    """A UDP socket where the X-Ray SDK inside the function sends its subsegments."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(1)
        yield sock


@pytest.fixture(scope="module")
def static_manifest(package_dir) -> dict[str, str]:
    return json.loads((package_dir / "fxfer" / "static_manifest" / "staticfiles.json").read_text())["paths"]


@pytest.fixture(scope="module")
def lambda_env(package_dir, stand_in, xray_daemon) -> dict[str, str]:
    return stand_in.lambda_env(package_dir, xray_port=xray_daemon.getsockname()[1])


@pytest.fixture(scope="module")
def cold_run(package_dir, lambda_env) -> lambda_local.Invocation:
    events = [
        lambda_local.api_gateway_event("/healthz"),
        lambda_local.s3_object_created_event(
            bucket=STAGE["environment_variables"]["FXFER_BUCKET"], key=UPLOAD_KEY, size=7
        ),
        lambda_local.api_gateway_event("/"),  # a page: its static files come from the static origin
        lambda_local.api_gateway_event("/saml/metadata/"),
        *(lambda_local.scheduled_event(function, time=DAILY_JOB_TIME) for function in SCHEDULED),
    ]
    return lambda_local.invoke(package_dir, events, env=lambda_env, imports=("xmlsec", "lxml.etree"))


# --- called through the function's handler ------------------------------------------------------------------


def test_healthz_through_api_gateway_answers_200_with_production_settings(cold_run):
    response = cold_run.response(HEALTHZ)
    assert response["statusCode"] == 200, response
    assert json.loads(response["body"]) == {"status": "ok", "checks": {"dynamodb": "ok", "s3": "ok"}}
    # Production settings are the ones in effect (HSTS is set there only).
    assert "max-age=31536000" in response["headers"]["Strict-Transport-Security"]


def test_the_function_is_fxfers_entry_around_zappas_handler(cold_run):
    """zappa_settings.json names fxfer.entry as the function's handler (Zappa sets it on deploy); it calls the
    handler.py Zappa ships at the package's root (test_nothing_from_a_venv_leaks_into_the_process: the files)."""
    assert STAGE["lambda_handler"] == "fxfer.entry.lambda_handler"
    assert cold_run.response(HEALTHZ)["statusCode"] == 200


def test_the_first_request_runs_without_garbage_collection_and_the_collector_resumes_after_it(cold_run):
    """fxfer.entry pauses Python's cyclic garbage collector while the process starts: the first web request runs
    with no collection; then the start's objects are frozen out of the collector's sight and it runs again (a
    collector left off would let every reference cycle of later requests pile up in a warm process)."""
    first, later = cold_run.invocations[HEALTHZ], cold_run.invocations[HEALTHZ + 1 :]
    assert first["gc_collections"] == 0
    assert first["gc_enabled_after"] is True
    assert first["gc_frozen_after"] > 50_000  # the start's objects (modules, classes, functions): some 150,000
    assert all(invocation["gc_enabled_after"] for invocation in later)
    assert sum(invocation["gc_collections"] for invocation in later) > 0, "no collection ran after the start"


def test_a_new_process_whose_first_event_is_a_job_runs_it_with_the_collector_on(package_dir, lambda_env):
    """A job may run for minutes: it never runs with the collector paused, even as a new process's first event."""
    job = lambda_local.scheduled_event("reports.jobs.every_minute", time=DAILY_JOB_TIME)
    run = lambda_local.invoke(package_dir, [job], env=lambda_env)
    assert isinstance(run.response(0), dict), run.log
    invocation = run.invocations[0]
    assert invocation["gc_collections"] > 0  # the collector ran during the job's start (Django, boto3, the job)
    assert invocation["gc_enabled_after"] is True
    assert invocation["gc_frozen_after"] > 0


def test_the_daily_aggregation_runs_from_its_scheduled_event(cold_run, stand_in):
    response = cold_run.response(FIRST_SCHEDULED + SCHEDULED.index("reports.jobs.aggregate_daily"))
    assert response["day"] == "2026-11-27"
    dynamodb = boto3.client("dynamodb", endpoint_url=stand_in.url, region_name=lambda_local.REGION)
    item = dynamodb.get_item(
        TableName=f"fxfer-{STAGE['environment_variables']['FXFER_STAGE']}-daily-stats",
        Key={"day": {"S": "2026-11-27"}, "scope": {"S": "all"}},
    ).get("Item")
    assert item is not None, "the job wrote no DailyStats item for the day before the scheduled time"
    assert item["status"]["S"] == "ok"


@pytest.mark.parametrize("function", SCHEDULED)
def test_every_scheduled_event_reaches_its_function(cold_run, function):
    response = cold_run.response(FIRST_SCHEDULED + SCHEDULED.index(function))
    assert isinstance(response, dict), f"{function} did not run (Zappa returned {response!r})"


def test_an_object_created_in_the_bucket_reaches_the_upload_entry_point(cold_run):
    response = cold_run.response(UPLOAD)
    assert response["records"] == [{"key": UPLOAD_KEY, "outcome": response["records"][0]["outcome"]}]
    # The bucket of the event source is the bucket the app is configured with.
    assert response["records"][0]["outcome"] != "foreign_bucket"
    assert '"message": "upload.object_noticed"' in cold_run.log


def test_a_page_links_its_static_files_on_the_static_origin_under_hashed_names(cold_run, lambda_env, static_manifest):
    """Static files are off Lambda (fxfer/static.py): the page names them on FXFER_STATIC_URL (CloudFront) under
    the hashed names of the manifest the package ships, and the policy admits that origin."""
    response = cold_run.response(STATIC)
    assert response["statusCode"] == 200, response
    origin = (STAGE["environment_variables"].get("FXFER_STATIC_URL") or _static_url_placeholder()).rstrip("/")
    assert f'href="{origin}/{static_manifest["css/fxfer.css"]}"' in response["body"]
    assert 'href="/static/' not in response["body"]
    scheme, _, host = origin.partition("://")
    assert f"script-src 'self' {scheme}://{host.split('/', 1)[0]}" in response["headers"]["Content-Security-Policy"]


def _static_url_placeholder() -> str:
    from devtools.placeholders import placeholder_production_env

    return placeholder_production_env()["FXFER_STATIC_URL"]


def test_the_package_ships_the_static_manifest_and_no_static_file(names, static_manifest):
    assert "fxfer/static_manifest/staticfiles.json" in names
    assert not [n for n in names if n.startswith(("static/", "staticfiles/", "django/contrib/admin/static/"))]
    hashed = set(static_manifest.values())
    assert not [n for n in names if n in hashed or n.split("/", 1)[-1] in hashed]


def test_xmlsec_and_lxml_import_inside_the_package(cold_run, package_dir):
    for name in ("xmlsec", "lxml.etree"):
        assert cold_run.imports[name].startswith(str(package_dir)), cold_run.imports


def test_aws_calls_are_traced_to_x_ray(cold_run, xray_daemon):
    operations = set()
    try:
        while True:
            _, document = xray_daemon.recv(65535).decode().split("\n", 1)
            operations.add(json.loads(document).get("aws", {}).get("operation"))
    except TimeoutError:
        pass
    assert {"GetItem", "HeadBucket"} <= operations


def test_nothing_from_a_venv_leaks_into_the_process(cold_run, package_dir):
    assert cold_run.version == [3, 13]
    assert cold_run.handler_file == str(package_dir / "fxfer" / "entry.py")
    assert cold_run.zappa_handler_file == str(package_dir / "handler.py")
    assert cold_run.modules_outside == []
    assert not [entry for entry in cold_run.sys_path if "site-packages" in entry], cold_run.sys_path


def _pem_body(pem: str) -> str:
    return "".join(line for line in pem.strip().splitlines() if not line.startswith("-----"))


def test_secrets_come_from_ssm_on_first_use_and_are_not_logged(cold_run, lambda_env, stand_in):
    """/saml/metadata/ needs the SP certificate and key and the IdP's certificates: SSM parameters, never
    environment variables, read by the package's one GetParameters."""
    response = cold_run.response(SAML_METADATA)
    assert response["statusCode"] == 200, response
    body = base64.b64decode(response["body"]).decode() if response["isBase64Encoded"] else response["body"]
    assert _pem_body(stand_in.parameters["FXFER_SAML_SP_CERT"]) in body.replace("\n", "")
    assert "FXFER_SECRET_KEY" in stand_in.parameters
    assert not (set(stand_in.parameters) & set(lambda_env))
    for name in ("FXFER_SECRET_KEY", "FXFER_SAML_SP_KEY"):
        assert _pem_body(stand_in.parameters[name])[:40] not in cold_run.log


def test_without_its_ssm_parameters_health_answers_and_a_page_needing_one_names_it(package_dir, lambda_env, stand_in):
    """Nothing is read at start: /healthz needs no secret and answers (fxfer.messages); the first page that needs
    one fails with the missing parameter's name in the log."""
    ssm = stand_in.ssm()
    missing = f"{stand_in.parameter_path}FXFER_SAML_SP_KEY"
    ssm.delete_parameter(Name=missing)
    try:
        run = lambda_local.invoke(
            package_dir,
            [lambda_local.api_gateway_event("/healthz"), lambda_local.api_gateway_event("/saml/metadata/")],
            env=lambda_env,
        )
    finally:
        stand_in.put_parameters()
    assert run.response(0)["statusCode"] == 200
    assert run.response(1)["statusCode"] == 500
    assert "ImproperlyConfigured" in run.log and missing in run.log


# --- what the zip holds ---------------------------------------------------------------------------------------


def test_the_package_fits_lambdas_unzipped_limit(archive):
    assert sum(info.file_size for info in archive.infolist()) < package.LAMBDA_UNZIPPED_LIMIT


@pytest.mark.parametrize("tool", ["pytest", "_pytest", "pytest_django", "xdist", "moto", "playwright", "ruff", "saml2"])
def test_no_test_tools_in_the_package(names, tool):
    assert not [n for n in names if n.split("/", 1)[0] == tool or n.startswith(f"{tool}-")]


def _deploy_only_distributions() -> dict[str, list[str]]:
    """Each of requirements-deploy.txt's distributions and its top-level import names (from the dev venv, where
    they are installed)."""
    top_levels: dict[str, list[str]] = {}
    for module, distributions in importlib.metadata.packages_distributions().items():
        for distribution in distributions:
            top_levels.setdefault(package.normalise(distribution), []).append(module)
    return {name: top_levels.get(name, []) for name in sorted(package.requirement_names(package.DEPLOY_REQUIREMENTS))}


@pytest.mark.parametrize(("distribution", "modules"), _deploy_only_distributions().items())
def test_zappas_deploy_time_dependencies_stay_out(names, distribution, modules):
    """Zappa's CLI needs them (troposphere, PyYAML, click, setuptools...); its handler does not import them, which
    the cold run above proves by answering without them."""
    assert modules, f"{distribution} is not installed in the dev venv"
    tops = {n.split("/", 1)[0] for n in names}
    assert not {t for t in tops if t.endswith(".dist-info") and package.normalise(t.split("-", 1)[0]) == distribution}
    assert not tops & {*modules, *(f"{module}.py" for module in modules)}


def test_botocore_ships_the_data_of_the_services_the_package_calls_only(names):
    services = {n.split("/")[2] for n in names if n.startswith("botocore/data/") and n.count("/") > 2}
    assert services == package.KEPT_BOTOCORE_SERVICES
    for loader_file in ("endpoints.json", "partitions.json", "sdk-default-configuration.json", "_retry.json"):
        assert f"botocore/data/{loader_file}" in names


def test_zappas_cli_modules_stay_out_and_its_handler_ships(names):
    assert "zappa/handler.py" in names and "handler.py" in names
    assert not {"zappa/cli.py", "zappa/core.py", "zappa/letsencrypt.py"} & set(names)


@pytest.mark.parametrize("folder", ["tests", "devtools", "bench", ".dev", "dist", "docs", ".venv", ".git", ".ci"])
def test_development_folders_stay_out(names, folder):
    assert not [n for n in names if n.startswith(f"{folder}/")]


def test_django_keeps_only_the_en_and_ja_locales(names):
    languages = {
        match.group(1)
        for n in names
        if (match := re.match(r"django/(?:conf|contrib/\w+)/locale/([^/]+)/", n)) and match.group(1) != "__pycache__"
    }
    assert languages == {"en", "ja"}
    assert "django/conf/locale/ja/LC_MESSAGES/django.mo" in names


def test_modules_ship_checked_hash_bytecode(archive, names):
    """Zappa dates zip entries 1980: only hash-checked .pyc stay valid (flags 0b11 = hash-based, checked)."""
    project = tuple(f"{name}/" for name in package.project_packages())
    sources = [
        n
        for n in names
        # Zappa drops an empty __init__.py into every __pycache__ folder: not a module anyone imports.
        if n.endswith(".py") and n.startswith((*project, "django/db/")) and "/__pycache__/" not in n
    ]
    assert any(n.startswith("fxfer/") for n in sources)
    for source in sources:
        folder, _, module = source.rpartition("/")
        pyc = f"{folder}/__pycache__/{module[:-3]}.cpython-313.pyc"
        assert pyc in names, f"no bytecode for {source}"
        header = archive.read(pyc)[:16]
        assert header[:4] == importlib.util.MAGIC_NUMBER, pyc
        assert int.from_bytes(header[4:8], "little") == 0b11, f"{pyc} is not checked-hash"
        assert header[8:16] == importlib.util.source_hash(archive.read(source)), f"{pyc} is stale"


def test_no_private_keys_or_secret_files_in_the_package(archive, names):
    suspicious = re.compile(r"(\.key|\.p12|\.pfx|id_rsa|secret_key|\.env|environment\.json)$", re.IGNORECASE)
    assert not [n for n in names if suspicious.search(n)]
    # A real PEM key has a body; libraries mention the markers (and docs show "xxx" bodies), which is fine.
    pem_key = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----\s*[A-Za-z0-9+/=\s]{100,}-----END")
    assert not [n for n in names if pem_key.search(archive.read(n))]


def test_binary_wheels_run_on_the_glibc_of_lambdas_python_3_13(archive, names):
    """The python3.13 runtime is Amazon Linux 2023 (glibc 2.34) on x86_64."""
    tags = [
        line.split(":", 1)[1].strip()
        for n in names
        if n.endswith(".dist-info/WHEEL")
        for line in archive.read(n).decode().splitlines()
        if line.startswith("Tag:")
    ]
    legacy = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
    for tag in tags:
        platform = tag.rsplit("-", 1)[1]
        if platform == "any":
            continue
        assert platform.endswith("_x86_64") and platform.startswith("manylinux"), tag
        glibc = legacy.get(platform.removesuffix("_x86_64")) or tuple(map(int, platform.split("_")[1:3]))
        assert glibc <= (2, 34), tag
