"""Production settings refuse to start without their variables and pass Django's deployment checks."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.placeholders import placeholder_production_env as production_env
from devtools.placeholders import required_production_names as required_names
from devtools.placeholders import secret_production_names as secret_names

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
    for name in ("FXFER_STAGE", "FXFER_BASE_URL", "FXFER_BUCKET", "FXFER_KMS_KEY_ID"):
        assert name in names


def test_production_reads_its_secrets_from_ssm_and_never_from_a_required_variable():
    assert {"FXFER_SECRET_KEY", "FXFER_SAML_SP_KEY"} <= set(secret_names())
    assert not set(secret_names()) & set(required_names())


def test_production_starts_without_its_secrets_and_reads_none_at_start():
    """On Lambda the secrets are SSM parameters read on first use (tests/fxfer/test_secrets.py): settings load and
    the system checks run without them, and without any AWS call (no endpoint, no credentials here)."""
    env = {k: v for k, v in production_env().items() if k not in secret_names()}
    result = _manage("check", env={**env, "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""})
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("missing", required_names())
def test_production_refuses_to_start_without_a_variable_and_names_it(missing):
    env = production_env()
    del env[missing]
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert f"The environment variable {missing} must be set" in result.stderr


def test_production_refuses_a_blank_variable():
    result = _manage("check", env={**production_env(), "FXFER_BUCKET": "   "})
    assert result.returncode != 0
    assert "FXFER_BUCKET" in result.stderr


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
