"""Build the Lambda package (`make package`): dist/fxfer-<stage>.zip, made by Zappa from a runtime-only venv.

    python -m devtools.package [--stage dev|prod]

The zip carries its stage's Zappa settings (environment, event mapping): build one per stage.

1. `.venv-runtime`'s site-packages holds requirements.txt only, installed --no-deps (every runtime dependency is
   pinned there): it is what ships. Zappa's deploy-time dependencies (requirements-deploy.txt: troposphere, PyYAML,
   click, setuptools...) go to `.venv-runtime/deploy-tools`, outside site-packages (Zappa copies site-packages
   only), on the venv's sys.path through a .pth file, so the venv's `zappa` CLI still deploys (docs/deploy.md).
   It is rebuilt when either requirements file changes (a stamp file), reused otherwise.
2. Django's locales other than en and ja are removed from it (the site speaks those two), and our own
   catalogues (locale/*/LC_MESSAGES/*.po) are compiled to .mo with msgfmt: .mo files are never committed.
3. The static files' manifest under production settings (fxfer.static.collect_manifest: the hashed names
   `manage.py collectstatic` uploads to the static bucket at deploy time, computed without AWS; the settings get
   placeholder values): fxfer/static_manifest/staticfiles.json ships, the static files themselves do not.
4. Bytecode is precompiled with checked hashes: Zappa dates zip entries 1980, so timestamp-based .pyc files
   would look stale and be recompiled on every cold start.
5. `zappa package dev` with the runtime venv active.
6. The zip is slimmed: what never runs in Lambda is dropped (`dropped`: botocore's data for services fxfer never
   calls, Zappa's CLI modules, C headers and Cython sources, Powertools' event_handler...) and its shared libraries
   stripped of their symbol tables, botocore's models unzipped and undocumented, its endpoints.json trimmed to the
   services kept (a faster first client), then the unzipped size is checked against Lambda's limit.

devtools/lambda_local.py runs the built package the way Lambda does. Never part of the package itself.
"""

import argparse
import contextlib
import gzip
import hashlib
import json
import os
import py_compile
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from devtools.placeholders import placeholder_production_env

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_VENV = ROOT / ".venv-runtime"
RUNTIME_PYTHON = RUNTIME_VENV / "bin" / "python"
REQUIREMENTS = ROOT / "requirements.txt"
DEPLOY_REQUIREMENTS = ROOT / "requirements-deploy.txt"
# Bumped when the way the runtime venv is installed changes, so an older venv is rebuilt.
RUNTIME_VENV_RECIPE = "deploy-tools-1"
# Where the runtime venv keeps Zappa's deploy-time dependencies: outside site-packages, so outside the zip.
DEPLOY_TOOLS = RUNTIME_VENV / "deploy-tools"
DEPLOY_TOOLS_PTH = "fxfer-deploy-tools.pth"
STAMP = RUNTIME_VENV / ".requirements.sha256"
STAGE = "dev"
# The package tests and the bench run this stage's zip.
PACKAGE_ZIP = ROOT / "dist" / f"fxfer-{STAGE}.zip"
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
    recipe = REQUIREMENTS.read_bytes() + DEPLOY_REQUIREMENTS.read_bytes() + RUNTIME_VENV_RECIPE.encode()
    return hashlib.sha256(recipe + sys.version.encode()).hexdigest()


def pins(path: Path) -> list[str]:
    """A requirements file's own pins (not its -r includes), without comments."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("-")]


def requirement_names(path: Path) -> set[str]:
    """The normalised distribution names pinned in a requirements file (its own lines, not its -r includes)."""
    return {normalise(pin.split("==", 1)[0].split("[", 1)[0]) for pin in pins(path)}


def normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


def ensure_runtime_venv() -> None:
    """Create `.venv-runtime`: requirements.txt in site-packages, requirements-deploy.txt's own pins in
    deploy-tools/; reuse it while both files are unchanged."""
    stamp = _requirements_stamp()
    if RUNTIME_PYTHON.exists() and STAMP.exists() and STAMP.read_text().strip() == stamp:
        print(f"runtime venv: {RUNTIME_VENV.name} is up to date with requirements.txt and requirements-deploy.txt")
        return
    print(f"runtime venv: building {RUNTIME_VENV.name} from requirements.txt and requirements-deploy.txt")
    shutil.rmtree(RUNTIME_VENV, ignore_errors=True)
    # From the dev venv's interpreter: venv uses its base interpreter, the same Python 3.13.
    subprocess.run([sys.executable, "-m", "venv", str(RUNTIME_VENV)], check=True)
    pip = [str(RUNTIME_PYTHON), "-m", "pip", "--disable-pip-version-check"]
    # --no-deps: what ships is exactly requirements.txt, and `pip check` below proves every pin is there.
    subprocess.run([*pip, "install", "-q", "--no-deps", "-r", str(REQUIREMENTS)], check=True)
    deploy_pins = pins(DEPLOY_REQUIREMENTS)
    subprocess.run([*pip, "install", "-q", "--no-deps", "--target", str(DEPLOY_TOOLS), *deploy_pins], check=True)
    (site_packages() / DEPLOY_TOOLS_PTH).write_text(os.path.relpath(DEPLOY_TOOLS, site_packages()) + "\n")
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


def compile_messages(root: Path = ROOT) -> list[Path]:
    """Compile every .po of the project's locale/ into its .mo (msgfmt --check refuses a broken catalogue)."""
    if not shutil.which("msgfmt"):
        raise SystemExit("msgfmt is missing: install GNU gettext (make setup does: apt-get install gettext)")
    compiled = []
    for po in sorted((root / "locale").glob("*/LC_MESSAGES/*.po")):
        mo = po.with_suffix(".mo")
        subprocess.run(["msgfmt", "--check", "-o", str(mo), str(po)], check=True)
        compiled.append(mo)
    if not compiled:
        raise SystemExit("no translation catalogue under locale/")
    return compiled


def clean_environ() -> dict[str, str]:
    """This process's environment without anything that would point Django or AWS clients elsewhere."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FXFER_", "AWS_", "VIRTUAL_ENV", "PYTHON")) and k != "DJANGO_SETTINGS_MODULE"
    }


STATIC_MANIFEST = ROOT / "fxfer" / "static_manifest" / "staticfiles.json"
_COLLECT_MANIFEST = (
    "import django; django.setup(); from django.conf import settings; from fxfer.static import collect_manifest; "
    "collect_manifest(settings.FXFER_STATIC_MANIFEST_DIR)"
)


def collectstatic(stage: str = STAGE) -> None:
    """The manifest production's `{% static %}` reads (original name -> hashed name), computed as collectstatic to
    the static bucket computes it (docs/deploy.md, step 7), without AWS. The files are not packaged: CloudFront
    serves them from the bucket."""
    env = {
        **clean_environ(),
        **placeholder_production_env(),
        **stage_settings(stage)["environment_variables"],
        "DJANGO_SETTINGS_MODULE": "fxfer.settings.production",
    }
    STATIC_MANIFEST.unlink(missing_ok=True)
    subprocess.run([str(RUNTIME_PYTHON), "-c", _COLLECT_MANIFEST], cwd=ROOT, env=env, check=True)
    if not STATIC_MANIFEST.exists():
        raise SystemExit(f"no static manifest at {STATIC_MANIFEST.relative_to(ROOT)}")
    paths = json.loads(STATIC_MANIFEST.read_text())["paths"]
    print(f"static files: {len(paths)} hashed names in {STATIC_MANIFEST.relative_to(ROOT)} (the files go to S3)")


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
        **clean_environ(),
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


# --- 6. slimming -------------------------------------------------------------------------------------------

# botocore's data for the services the package calls; the rest of botocore/data/ (over 400 services, most of the
# package's size) never loads. fxfer's own clients (tests/package checks the code names no other), PynamoDB's
# (dynamodb), django-ses's (ses or sesv2), django-storages' (s3), production's secrets (ssm, fxfer.env.secret), the
# X-Ray SDK's sampling rules (xray). botocore/data's own files (endpoints.json, partitions.json, _retry.json,
# sdk-default-configuration.json) stay.
KEPT_BOTOCORE_SERVICES = frozenset(
    {
        "cloudwatch",
        "dynamodb",
        "events",  # provision's EventBridge rule for GuardDuty's malware-scan verdicts
        "guardduty",  # provision's Malware Protection plan
        "kms",
        "lambda",
        "logs",
        "s3",
        "ses",
        "sesv2",
        "sns",
        "sqs",
        "ssm",
        "xray",
    }
)
# Folders and modules that never run in Lambda: Zappa's CLI modules (they import its deploy-time dependencies,
# absent here), Powertools' event_handler (we route with Django) and the utilities its Logger, Metrics and Tracer do
# not import (parameters stays: a cached SSM or Secrets Manager read would use it), Django's gis and postgres (not
# installed apps) and its database backends (DATABASES is empty: DynamoDB is the only datastore),
# static files (the source folder static/, a STATIC_ROOT left by an older build or by hand, the apps' static folders:
# collectstatic uploads them to the static bucket, and the package needs only their manifest), lxml's C headers
# and the parts of lxml nothing imports (python3-saml and xmlsec use lxml.etree only), pip's metadata (Zappa leaves
# pip itself out).
DROPPED_PREFIXES = (
    "zappa/cli.py",
    "zappa/core.py",
    "zappa/letsencrypt.py",
    "aws_lambda_powertools/event_handler/",
    "django/contrib/gis/",
    "django/contrib/postgres/",
    "django/contrib/admin/static/",
    "static/",
    "staticfiles/",
    *(
        f"aws_lambda_powertools/utilities/{utility}/"
        for utility in (
            "auth_alpha",
            "batch",
            "circuit_breaker",
            "data_classes",
            "data_masking",
            "feature_flags",
            "idempotency",
            "kafka",
            "parser",
            "streaming",
            "validation",
        )
    ),
    *(f"django/db/backends/{engine}/" for engine in ("mysql", "oracle", "postgresql", "sqlite3")),
    "lxml/includes/",
    "lxml/objectify.",
    "lxml/html/",
    "pip-",
)
# C headers and Cython sources (only a compiler reads them), type stubs.
DROPPED_SUFFIXES = (".h", ".pyx", ".pxd", ".pxi", ".pyi")


def _bytecode_source(name: str) -> str | None:
    """`a/b.py` for `a/__pycache__/b.cpython-313.pyc`; None for bytecode this Python never loads (another
    version or optimisation level, a pytest-rewritten module, a .pyc outside __pycache__)."""
    folder, _, file = name.rpartition("/")
    if not (folder == "__pycache__" or folder.endswith("/__pycache__")):
        return None
    stem, _, tag = file.partition(".")
    if tag != f"cpython-{PYTHON_VERSION.replace('.', '')}.pyc":
        return None
    parent = folder.removesuffix("__pycache__")
    return f"{parent}{stem}.py"


def dropped(name: str) -> bool:
    """Whether the zip entry `name` never runs in Lambda (its bytecode goes with its source)."""
    if name.endswith(".pyc"):
        source = _bytecode_source(name)
        if source is None:
            return True
        name = source
    parts = name.split("/")
    if parts[0] == "botocore" and len(parts) > 3 and parts[1] == "data" and parts[2] not in KEPT_BOTOCORE_SERVICES:
        return True
    if "tests" in parts[1:-1]:  # a library's own tests (the project's tests/ is excluded by zappa_settings.json)
        return True
    if len(parts) == 1 and name.endswith(".pth"):  # site's path files: /var/task is no site directory
        return True
    if parts[0].endswith(".dist-info") and parts[-1] == "RECORD":  # pip's uninstall list; metadata reads stay
        return True
    return name.startswith(DROPPED_PREFIXES) or name.endswith(DROPPED_SUFFIXES)


def is_shared_library(name: str) -> bool:
    file = name.rpartition("/")[2]
    return file.endswith(".so") or ".so." in file


def is_gzipped_botocore_model(name: str) -> bool:
    return name.startswith("botocore/data/") and name.endswith(".json.gz")


# botocore reads `X.json` before `X.json.gz`. Its service models ship gzipped; a client's first build reads and
# parses them (S3's service model is 1.4 MB of JSON), and gunzipping S3's and DynamoDB's models and endpoint rules
# cost ~7 ms of CPU more than reading them plain (measured in the cold start's first /healthz). The zip deflates
# them as well as gzip did. The service models also lose their documentation (help() and docstrings read it;
# nothing that runs does, except the client context parameters', kept): S3's shrinks to 0.23 MB and parses in
# 2.9 ms instead of 4.9, DynamoDB's in 1.6 instead of 2.4, SSM's (the secrets) in 3.9 instead of 5.4. The endpoint
# rules are indented JSON, S3's 0.92 MB of which 0.80 is spaces: written compact, a fresh process reads and parses
# them in 1.4 ms instead of 2.8.
def _undocumented(node, key: str = ""):
    if key == "clientContextParams":
        return node
    if isinstance(node, dict):
        return {k: _undocumented(v, k) for k, v in node.items() if k != "documentation"}
    if isinstance(node, list):
        return [_undocumented(v) for v in node]
    return node


def plain_botocore_model(info: zipfile.ZipInfo, data: bytes) -> tuple[zipfile.ZipInfo, bytes]:
    plain = zipfile.ZipInfo(info.filename.removesuffix(".gz"), date_time=info.date_time)
    plain.external_attr = info.external_attr
    plain.compress_type = zipfile.ZIP_DEFLATED
    data = gzip.decompress(data)
    if plain.filename.endswith("/service-2.json"):
        data = json.dumps(_undocumented(json.loads(data)), separators=(",", ":")).encode()
    elif plain.filename.endswith("/endpoint-rule-set-1.json"):
        data = json.dumps(json.loads(data), separators=(",", ":")).encode()
    return plain, data


ENDPOINTS_FILE = "botocore/data/endpoints.json"


def endpoint_prefixes(source: zipfile.ZipFile) -> set[str]:
    """The endpoint prefixes (endpoints.json's keys: cloudwatch's is monitoring, ses's email) of the services
    whose models the package ships."""
    prefixes = set()
    for name in source.namelist():
        if not dropped(name) and re.fullmatch(r"botocore/data/[^/]+/[^/]+/service-2\.json(\.gz)?", name):
            data = source.read(name)
            model = json.loads(gzip.decompress(data) if name.endswith(".gz") else data)
            prefixes.add(model["metadata"].get("endpointPrefix"))
    return prefixes - {None}


# botocore's endpoints.json (1.2 MB) describes the endpoints of 1,170 services in 8 partitions; every cold start's
# first client parses it (~11 ms of CPU). The package keeps the entries of the services it ships models for, in
# every partition, whole (regions, variants, credential scopes): their endpoints resolve as before.
def trimmed_endpoints(data: bytes, prefixes: set[str]) -> bytes:
    endpoints = json.loads(data)
    for partition in endpoints["partitions"]:
        partition["services"] = {k: v for k, v in partition["services"].items() if k in prefixes}
    return json.dumps(endpoints, separators=(",", ":")).encode()


def strip_symbols(data: bytes, strip: str) -> bytes:
    """A shared library without the symbol table the dynamic loader never reads (`strip --strip-unneeded`, as
    Linux distributions ship theirs): the xmlsec wheel carries 1.6 MB of it."""
    with tempfile.TemporaryDirectory(prefix="fxfer-strip-") as scratch:
        library = Path(scratch) / "library.so"
        library.write_bytes(data)
        subprocess.run([strip, "--strip-unneeded", str(library)], check=True)
        stripped = library.read_bytes()
    return stripped if len(stripped) < len(data) else data


# Zappa writes these at the zip's root after the bytecode step (its handler, the stage's settings, the Django
# entry point it imports), so without this their source was compiled at every cold start (~5 ms of CPU).
ZAPPA_WRITTEN = ("handler.py", "zappa_settings.py", "django_zappa_app.py")


def zappa_written_bytecode(info: zipfile.ZipInfo, source: bytes) -> tuple[zipfile.ZipInfo, bytes]:
    """The checked-hash .pyc of a module Zappa wrote at the zip's root, as the rest of the package has."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" != PYTHON_VERSION:
        raise SystemExit(f"Build with Python {PYTHON_VERSION}: its bytecode is what Lambda's runtime loads")
    stem = info.filename.removesuffix(".py")
    with tempfile.TemporaryDirectory(prefix="fxfer-pyc-") as scratch:
        module, pyc = Path(scratch) / info.filename, Path(scratch) / "module.pyc"
        module.write_bytes(source)
        py_compile.compile(
            str(module),
            cfile=str(pyc),
            dfile=info.filename,
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
        )
        data = pyc.read_bytes()
    tag = f"cpython-{PYTHON_VERSION.replace('.', '')}"
    compiled = zipfile.ZipInfo(f"__pycache__/{stem}.{tag}.pyc", date_time=info.date_time)
    compiled.external_attr = info.external_attr
    compiled.compress_type = zipfile.ZIP_DEFLATED
    return compiled, data


def slim(path: Path, *, strip: str | None = None) -> tuple[int, int]:
    """Rewrite the zip without what never runs (`dropped`), its shared libraries stripped when `strip` (the
    binutils tool) is given, botocore's models gunzipped and undocumented, its endpoints.json trimmed to their
    services, and adds checked-hash bytecode for the modules Zappa wrote (ZAPPA_WRITTEN),
    keeping each entry's date and mode as Zappa wrote them. Returns (entries, unzipped bytes) removed."""
    slimmed = path.with_name(path.name + ".slim")
    entries = removed = 0
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(slimmed, "w", zipfile.ZIP_DEFLATED) as target:
        prefixes = endpoint_prefixes(source)
        for info in source.infolist():
            if dropped(info.filename):
                entries += 1
                removed += info.file_size
                continue
            data = source.read(info)
            if strip and is_shared_library(info.filename):
                data = strip_symbols(data, strip)
                removed += info.file_size - len(data)
            if is_gzipped_botocore_model(info.filename):
                gzipped_size = len(data)
                info, data = plain_botocore_model(info, data)
                removed -= len(data) - gzipped_size
            if info.filename == ENDPOINTS_FILE:
                trimmed = trimmed_endpoints(data, prefixes)
                removed += len(data) - len(trimmed)
                data = trimmed
            target.writestr(info, data, compress_type=info.compress_type)
            if info.filename in ZAPPA_WRITTEN:
                compiled, bytecode = zappa_written_bytecode(info, data)
                target.writestr(compiled, bytecode, compress_type=compiled.compress_type)
                removed -= len(bytecode)
    os.replace(slimmed, path)
    return entries, removed


# --- the build's identity --------------------------------------------------------------------------------------

# Read by the operator's page (reports/operations.py); written only while Zappa packages, so a checkout never
# shows a package's identity as its own.
BUILD_FILE = ROOT / "fxfer" / "build.json"


def build_identity() -> dict:
    """The version (pyproject.toml), the git commit (marked when the tree had uncommitted changes), the time."""
    import tomllib
    from datetime import UTC, datetime

    def git(*args: str) -> str:
        found = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return found.stdout.strip() if found.returncode == 0 else ""

    commit = git("rev-parse", "--short=12", "HEAD")
    if commit and git("status", "--porcelain", "--untracked-files=no"):
        commit += " + uncommitted changes"
    return {
        "version": tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"],
        "commit": commit,
        "built_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


@contextlib.contextmanager
def build_file():
    BUILD_FILE.write_text(json.dumps(build_identity()) + "\n")
    try:
        yield
    finally:
        BUILD_FILE.unlink(missing_ok=True)


# --- 7. size ------------------------------------------------------------------------------------------------


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
    if warning := rollback_warning(zipped):
        print(warning)


# `zappa rollback` downloads an old version's zip and uploads it to Lambda directly (ZipFile=), which Lambda
# takes only up to 50 MB zipped; deploy and update go through S3 and are not affected.
LAMBDA_DIRECT_UPLOAD_LIMIT = 50 * 1024 * 1024
ROLLBACK_WARNING_AT = 45 * 1024 * 1024


def rollback_warning(zipped: int) -> str:
    """A warning when `zappa rollback` would fail (or soon will) for a package of this zipped size, else ''."""
    if zipped < ROLLBACK_WARNING_AT:
        return ""
    state = "over" if zipped >= LAMBDA_DIRECT_UPLOAD_LIMIT else "close to"
    return (
        f"warning: {mb(zipped)} zipped is {state} the {mb(LAMBDA_DIRECT_UPLOAD_LIMIT)} that `zappa rollback` can "
        "upload: roll back by deploying the previous release's tag instead (docs/deploy.md, Rolling back)."
    )


# The python3.13 runtime: Amazon Linux 2023 (glibc 2.34) on x86_64 (zappa_settings.json's architecture).
LAMBDA_GLIBC = (2, 34)
_LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


def foreign_wheels(path: Path) -> list[str]:
    """The wheel tags in the package that Lambda cannot load: another OS or CPU (a build on macOS or arm64
    Linux), or a glibc newer than Amazon Linux 2023's (pip picks those on a newer Linux)."""
    with zipfile.ZipFile(path) as archive:
        tags = [
            line.split(":", 1)[1].strip()
            for name in archive.namelist()
            if name.endswith(".dist-info/WHEEL")
            for line in archive.read(name).decode().splitlines()
            if line.startswith("Tag:")
        ]
    foreign = []
    for tag in tags:
        platform = tag.rsplit("-", 1)[1]
        if platform == "any":
            continue
        if not (platform.startswith("manylinux") and platform.endswith("_x86_64")):
            foreign.append(tag)
            continue
        legacy = _LEGACY_MANYLINUX.get(platform.removesuffix("_x86_64"))
        glibc = legacy or tuple(int(part) for part in platform.split("_")[1:3])
        if glibc > LAMBDA_GLIBC:
            foreign.append(tag)
    return sorted(set(foreign))


def check_platform(path: Path = PACKAGE_ZIP) -> None:
    if foreign := foreign_wheels(path):
        raise SystemExit(
            "The package holds binary wheels Lambda (x86_64, Amazon Linux 2023, glibc 2.34) cannot load: "
            + ", ".join(foreign)
            + ". Build it in the Lambda build image (docs/deploy.md, step 9)."
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", default=STAGE, choices=sorted(json.loads(ZAPPA_SETTINGS.read_text())))
    args = parser.parse_args(argv)
    started = time.monotonic()
    ensure_runtime_venv()
    freed = prune_locales(site_packages())
    print(f"locales: Django keeps {', '.join(sorted(KEPT_LOCALES))}" + (f" ({mb(freed)} removed)" if freed else ""))
    print(f"translations: {', '.join(str(mo.relative_to(ROOT)) for mo in compile_messages())} compiled")
    collectstatic(args.stage)
    precompile()
    with build_file():  # which build this is, for the operator's page
        built = zappa_package(args.stage)
    strip = shutil.which("strip")
    entries, removed = slim(built, strip=strip)
    print(
        f"slimmed: {entries} files that never run in Lambda removed, "
        + ("shared libraries stripped" if strip else "shared libraries not stripped (no `strip`: install binutils)")
        + f" ({mb(removed)} unzipped)"
    )
    check_size(built)
    check_platform(built)
    print(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
