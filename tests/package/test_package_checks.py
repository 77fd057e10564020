"""devtools/package.py's checks of a built zip, on small zips made here (no build needed)."""

import ast
import importlib.metadata
import importlib.util
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from devtools import package


def _zip_with_wheels(path, *tags: str):
    with zipfile.ZipFile(path, "w") as archive:
        for number, tag in enumerate(tags):
            archive.writestr(f"dist{number}-1.0.dist-info/WHEEL", f"Wheel-Version: 1.0\nTag: {tag}\n")
        archive.writestr("fxfer/__init__.py", "")
    return path


def test_wheels_lambda_can_load_pass(tmp_path):
    built = _zip_with_wheels(
        tmp_path / "ok.zip",
        "py3-none-any",
        "cp313-cp313-manylinux2014_x86_64",
        "cp313-cp313-manylinux_2_28_x86_64",
        "cp313-cp313-manylinux_2_34_x86_64",
    )
    package.check_platform(built)  # does not raise


@pytest.mark.parametrize(
    "tag",
    [
        "cp313-cp313-manylinux_2_35_x86_64",  # built on a Linux newer than Amazon Linux 2023
        "cp313-cp313-manylinux_2_28_aarch64",  # built on arm64 Linux
        "cp313-cp313-macosx_11_0_arm64",  # built on a Mac
        "cp313-cp313-musllinux_1_2_x86_64",  # built on Alpine
    ],
)
def test_a_wheel_lambda_cannot_load_stops_the_build_naming_it(tmp_path, tag):
    built = _zip_with_wheels(tmp_path / "foreign.zip", "py3-none-any", tag)
    with pytest.raises(SystemExit) as stopped:
        package.check_platform(built)
    assert tag in str(stopped.value)
    assert "docs/deploy.md" in str(stopped.value)


def test_a_package_near_or_over_the_direct_upload_limit_warns_about_rollback():
    mib = 1024 * 1024
    assert package.rollback_warning(40 * mib) == ""
    assert "close to" in package.rollback_warning(47 * mib)
    assert "over" in package.rollback_warning(51 * mib)
    assert "zappa rollback" in package.rollback_warning(51 * mib)


# --- slimming: what never runs in Lambda leaves the zip ---------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "botocore/data/ec2/2016-11-15/service-2.json.gz",  # a service fxfer never calls
        "botocore/data/ec2/2016-11-15/__pycache__/__init__.cpython-313.pyc",
        "zappa/cli.py",  # Zappa's CLI: imports click, troposphere... (requirements-deploy.txt)
        "zappa/__pycache__/core.cpython-313.pyc",
        "aws_lambda_powertools/event_handler/api_gateway.py",
        "django/contrib/gis/db/models/__init__.py",
        "django/contrib/admin/static/admin/js/core.js",  # static files go to the static bucket, not the zip
        "static/js/send.js",
        "static/vendor/uppy/uppy.min.js",
        "staticfiles/css/fxfer.0123456789ab.css",  # a STATIC_ROOT an older build left behind
        "staticfiles/staticfiles.json",
        "aws_lambda_powertools/utilities/data_classes/s3_event.py",  # nothing of ours or Logger/Metrics/Tracer's
        "django/db/backends/postgresql/base.py",  # DATABASES is empty
        "django/db/backends/sqlite3/base.py",
        "lxml/includes/libxml/tree.h",
        "lxml/etree.pyx",
        "lxml/objectify.cpython-313-x86_64-linux-gnu.so",
        "certifi/tests/test_certify.py",
        "django-5.2.19.dist-info/RECORD",
        "pip-24.2.dist-info/METADATA",
        "fxfer-deploy-tools.pth",  # puts Zappa's CLI dependencies on the runtime venv's path, outside the zip
        "fxfer/__pycache__/aws.cpython-312.pyc",  # another Python's bytecode
        "fxfer/__pycache__/aws.cpython-313.opt-1.pyc",
        "fxfer/__pycache__/aws.cpython-313-pytest-9.2.0.pyc",
    ],
)
def test_what_never_runs_in_lambda_is_dropped(name):
    assert package.dropped(name)


@pytest.mark.parametrize(
    "name",
    [
        "botocore/data/endpoints.json",
        "botocore/data/partitions.json",
        "botocore/data/sdk-default-configuration.json",
        "botocore/data/_retry.json",
        "botocore/data/dynamodb/2012-08-10/service-2.json.gz",
        "botocore/data/s3/2006-03-01/endpoint-rule-set-1.json.gz",
        "botocore/__pycache__/loaders.cpython-313.pyc",
        "zappa/handler.py",
        "zappa/__pycache__/utilities.cpython-313.pyc",
        "handler.py",
        "aws_lambda_powertools/metrics/__init__.py",
        "aws_lambda_powertools/utilities/jmespath_utils/__init__.py",  # Logger imports it
        "aws_lambda_powertools/utilities/parameters/ssm.py",
        "django/db/backends/dummy/base.py",  # the backend of an empty DATABASES
        "django/contrib/admin/templates/admin/base.html",
        "lxml/etree.cpython-313-x86_64-linux-gnu.so",
        "xmlsec.cpython-313-x86_64-linux-gnu.so",
        "django-5.2.19.dist-info/METADATA",  # importlib.metadata reads it (django-ses's version)
        "fxfer/__pycache__/aws.cpython-313.pyc",
        "fxfer/static_manifest/staticfiles.json",  # {% static %} reads the hashed names there
        "django/contrib/staticfiles/storage.py",
    ],
)
def test_what_runs_in_lambda_stays(name):
    assert not package.dropped(name)


def test_slimming_keeps_each_entrys_date_and_mode(tmp_path):
    built = tmp_path / "built.zip"
    with zipfile.ZipFile(built, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in ("fxfer/aws.py", "botocore/data/ec2/2016-11-15/service-2.json.gz"):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o755 << 16
            archive.writestr(info, b"x" * 100)
    assert package.slim(built) == (1, 100)
    with zipfile.ZipFile(built) as archive:
        [info] = archive.infolist()
        assert (info.filename, info.date_time) == ("fxfer/aws.py", (1980, 1, 1, 0, 0, 0))
        assert info.external_attr == 0o755 << 16
        assert archive.read(info) == b"x" * 100


def test_botocore_models_ship_plain_and_undocumented_for_a_faster_first_client(tmp_path):
    import gzip
    import json

    from botocore.loaders import Loader

    model = {
        "version": "2.0",
        "metadata": {"apiVersion": "2012-08-10"},
        "documentation": "<p>Amazon DynamoDB</p>",
        "clientContextParams": {"Accelerate": {"documentation": "botocore reads it", "type": "boolean"}},
        "operations": {"GetItem": {"name": "GetItem", "documentation": "<p>Returns</p>"}},
        "shapes": {"Key": {"type": "string", "documentation": "<p>A key</p>"}},
    }
    built = tmp_path / "built.zip"
    with zipfile.ZipFile(built, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo("botocore/data/dynamodb/2012-08-10/service-2.json.gz", date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        archive.writestr(info, gzip.compress(json.dumps(model).encode()))
    package.slim(built)
    with zipfile.ZipFile(built) as archive:
        [info] = archive.infolist()
        assert (info.filename, info.date_time) == (
            "botocore/data/dynamodb/2012-08-10/service-2.json",
            (1980, 1, 1, 0, 0, 0),
        )
        assert info.external_attr == 0o644 << 16
        archive.extractall(tmp_path / "unzipped")
    loader = Loader(
        extra_search_paths=[str(tmp_path / "unzipped" / "botocore" / "data")], include_default_search_paths=False
    )
    assert loader.load_service_model("dynamodb", "service-2") == {
        "version": "2.0",
        "metadata": {"apiVersion": "2012-08-10"},
        "clientContextParams": {"Accelerate": {"documentation": "botocore reads it", "type": "boolean"}},
        "operations": {"GetItem": {"name": "GetItem"}},
        "shapes": {"Key": {"type": "string"}},
    }


def test_endpoint_rules_ship_plain_and_compact_with_every_rule_kept(tmp_path):
    import gzip
    import json

    from botocore.loaders import Loader

    rules = {
        "version": "1.0",
        "parameters": {"Region": {"builtIn": "AWS::Region", "documentation": "The region", "type": "String"}},
        "rules": [{"conditions": [], "endpoint": {"url": "https://s3.{Region}.amazonaws.com"}, "type": "endpoint"}],
    }
    built = tmp_path / "built.zip"
    with zipfile.ZipFile(built, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "botocore/data/s3/2006-03-01/endpoint-rule-set-1.json.gz",
            gzip.compress(json.dumps(rules, indent=2).encode()),
        )
    package.slim(built)
    with zipfile.ZipFile(built) as archive:
        [info] = archive.infolist()
        assert info.filename == "botocore/data/s3/2006-03-01/endpoint-rule-set-1.json"
        assert b"\n" not in archive.read(info) and b", " not in archive.read(info)
        archive.extractall(tmp_path / "unzipped")
    loader = Loader(
        extra_search_paths=[str(tmp_path / "unzipped" / "botocore" / "data")], include_default_search_paths=False
    )
    assert loader.load_service_model("s3", "endpoint-rule-set-1") == rules


def test_endpoints_keep_the_services_the_package_ships_models_for(tmp_path):
    import gzip
    import json

    def partition(name):
        return {"partition": name, "regions": {"r": {}}, "services": {"email": {"x": 1}, "ec2": {}, "s3": {"y": 2}}}

    endpoints = {"partitions": [partition("aws"), partition("aws-cn")], "version": 3}
    built = tmp_path / "built.zip"
    with zipfile.ZipFile(built, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("botocore/data/endpoints.json", json.dumps(endpoints))
        for service, prefix in (("sesv2", "email"), ("s3", "s3"), ("ec2", "ec2")):  # ec2's model is dropped
            model = {"metadata": {"endpointPrefix": prefix}}
            archive.writestr(
                f"botocore/data/{service}/2020-01-01/service-2.json.gz", gzip.compress(json.dumps(model).encode())
            )
    package.slim(built)
    with zipfile.ZipFile(built) as archive:
        trimmed = json.loads(archive.read("botocore/data/endpoints.json"))
    assert trimmed["version"] == 3
    for kept in trimmed["partitions"]:
        assert kept["regions"] == {"r": {}}
        assert kept["services"] == {"email": {"x": 1}, "s3": {"y": 2}}


def test_a_stripped_extension_module_is_smaller_and_still_imports(tmp_path):
    import xmlsec

    original = Path(xmlsec.__file__)
    stripped = package.strip_symbols(original.read_bytes(), shutil.which("strip"))
    assert len(stripped) < original.stat().st_size
    (tmp_path / original.name).write_bytes(stripped)
    probe = "import sys; sys.path.insert(0, sys.argv[1]); import xmlsec; print(xmlsec.__file__)"
    loaded = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == str(tmp_path / original.name)


def test_shared_libraries_are_told_apart():
    assert package.is_shared_library("xmlsec.cpython-313-x86_64-linux-gnu.so")
    assert package.is_shared_library("lxml.libs/libxml2-abc123.so.2.13.8")
    assert not package.is_shared_library("fxfer/aws.py")
    assert not package.is_shared_library("botocore/data/s3/2006-03-01/service-2.json.gz")


def _services_named_by_shipped_code() -> set[str]:
    """The service names in the first argument of every `...client(...)` / `...resource(...)` call of the code
    that ships (`"sesv2" if v2 else "ses"` names both)."""
    services = set()
    for name in package.project_packages():
        for path in (package.ROOT / name).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if not (isinstance(node, ast.Call) and node.args):
                    continue
                called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if called.endswith(("client", "resource")):
                    constants = [c for c in ast.walk(node.args[0]) if isinstance(c, ast.Constant)]
                    services |= {c.value for c in constants if isinstance(c.value, str)}
    return services


# Services called by libraries rather than our code: the X-Ray SDK reads its sampling rules (xray). PynamoDB
# (dynamodb), django-storages (s3), django-ses (ses, sesv2) call services our code names too; fxfer.env names ssm.
LIBRARY_SERVICES = {"xray"}


def test_the_kept_botocore_services_are_the_ones_the_package_calls():
    """A new client("...") in the code fails here until devtools/package.py keeps its service's botocore data
    (without it the client cannot be created in Lambda)."""
    called = _services_named_by_shipped_code()
    assert {"dynamodb", "s3", "kms", "ses"} <= called  # the scan finds our clients
    assert called | LIBRARY_SERVICES == package.KEPT_BOTOCORE_SERVICES


# --- the requirements split -------------------------------------------------------------------------------------


def test_runtime_and_deploy_requirements_do_not_overlap_and_cover_zappa():
    runtime = package.requirement_names(package.REQUIREMENTS)
    deploy = package.requirement_names(package.DEPLOY_REQUIREMENTS)
    assert not runtime & deploy
    assert {"zappa", "werkzeug", "durationpy"} <= runtime  # what Zappa's handler imports
    assert {"troposphere", "pyyaml", "click", "setuptools"} <= deploy
    zappa_needs = {
        package.normalise(re.split(r"[ ;<>=!~\[(]", requirement, maxsplit=1)[0])
        for requirement in importlib.metadata.requires("zappa")
    }
    # pip: Zappa's CLI imports it; it is in every venv, and Zappa leaves it out of the zip.
    assert zappa_needs - {"pip"} <= runtime | deploy


_IMPORT_WITHOUT_COMPILING = """
import importlib.machinery, sys
def refuse(self, data, path, **kwargs):
    raise SystemExit(f"compiled {path} from source")
importlib.machinery.SourceFileLoader.source_to_code = refuse
sys.dont_write_bytecode = True
import handler, zappa_settings, django_zappa_app
print(handler.VALUE + zappa_settings.VALUE + django_zappa_app.VALUE)
"""


def test_the_modules_zappa_writes_ship_checked_hash_bytecode_the_cold_start_loads(tmp_path):
    """Zappa writes handler.py, zappa_settings.py and django_zappa_app.py after the bytecode step: without their
    .pyc every cold start compiled them from source."""
    built = tmp_path / "built.zip"
    with zipfile.ZipFile(built, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in package.ZAPPA_WRITTEN:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # Zappa's date: a timestamped .pyc is stale
            archive.writestr(info, f"VALUE = {len(name)}\n")
        archive.writestr("fxfer/aws.py", "")
    package.slim(built)
    with zipfile.ZipFile(built) as archive:
        tag = f"cpython-{package.PYTHON_VERSION.replace('.', '')}"
        bytecode = {f"__pycache__/{name.removesuffix('.py')}.{tag}.pyc" for name in package.ZAPPA_WRITTEN}
        assert bytecode <= set(archive.namelist())
        assert not any(name.startswith("fxfer/__pycache__/") for name in archive.namelist())  # only Zappa's
        for name in package.ZAPPA_WRITTEN:
            pyc = archive.read(f"__pycache__/{name.removesuffix('.py')}.{tag}.pyc")
            assert int.from_bytes(pyc[4:8], "little") == 0b11  # hash-based, checked against the source
            assert pyc[8:16] == importlib.util.source_hash(archive.read(name))
        archive.extractall(tmp_path / "task")
    ran = subprocess.run(
        [sys.executable, "-c", _IMPORT_WITHOUT_COMPILING], cwd=tmp_path / "task", capture_output=True, text=True
    )
    assert (ran.returncode, ran.stdout.strip()) == (0, str(sum(map(len, package.ZAPPA_WRITTEN)))), ran.stderr
