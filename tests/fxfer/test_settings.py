"""Production settings refuse to start without their variables and pass Django's deployment checks."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.placeholders import placeholder_production_env as production_env
from devtools.placeholders import required_production_names as required_names

ROOT = Path(__file__).resolve().parents[2]


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FXFER_") and k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "fxfer.settings.production", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_requires_the_core_variables():
    names = required_names()
    for name in ("FXFER_SECRET_KEY", "FXFER_STAGE", "FXFER_BASE_URL", "FXFER_BUCKET", "FXFER_KMS_KEY_ID"):
        assert name in names


@pytest.mark.parametrize("missing", required_names())
def test_production_refuses_to_start_without_a_variable_and_names_it(missing):
    env = production_env()
    del env[missing]
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert f"The environment variable {missing} must be set" in result.stderr


def test_production_refuses_a_blank_variable():
    result = _manage("check", env={**production_env(), "FXFER_SECRET_KEY": "   "})
    assert result.returncode != 0
    assert "FXFER_SECRET_KEY" in result.stderr


def test_production_refuses_a_plain_http_base_url():
    result = _manage("check", env={**production_env(), "FXFER_BASE_URL": "http://fxfer.example.com"})
    assert result.returncode != 0
    assert "FXFER_BASE_URL must be an https:// URL" in result.stderr


def test_production_passes_the_deployment_checks():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_a_stray_orm_query_fails_loudly(django_db_blocker):
    from django.contrib.contenttypes.models import ContentType
    from django.core.exceptions import ImproperlyConfigured

    with django_db_blocker.unblock(), pytest.raises(ImproperlyConfigured, match=r"settings\.DATABASES"):
        ContentType.objects.count()
