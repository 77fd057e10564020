"""Production's secrets from SSM Parameter Store (fxfer.env.secret): nothing read at start, every secret of the
stage in one GetParameters the first time one is used, kept for the process; a failed read is not kept."""

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from fxfer import aws, env
from tests.faults import ERROR, LOST, TIMEOUT, inject, recording

NAMES = ("FXFER_SECRET_KEY", "FXFER_SAML_SP_KEY", "FXFER_SAML_SP_CERT")


@pytest.fixture
def path(monkeypatch) -> str:
    # A process of its own: nothing declared or read before this test.
    monkeypatch.setattr(env, "_declared", {})
    monkeypatch.setattr(env, "_values", {})
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)
    return f"/fxfer/{settings.FXFER_STAGE}/"


def _put(path: str, **values: str) -> None:
    ssm = aws.client("ssm")
    for name, value in values.items():
        kind = "String" if "CERT" in name else "SecureString"
        ssm.put_parameter(Name=f"{path}{name}", Value=value, Type=kind, Overwrite=True)


def _ssm_calls(fault) -> list[str]:
    return [operation for service, operation in fault.calls if service == "ssm"]


def test_no_call_until_a_secret_is_used_then_one_call_for_all_of_them(path):
    _put(path, FXFER_SECRET_KEY="s3cret-key", FXFER_SAML_SP_KEY="sp-key", FXFER_SAML_SP_CERT="sp-cert")
    with recording() as calls:
        secret_key, sp_key, sp_cert = (env.secret(name, path=path) for name in NAMES)
        assert _ssm_calls(calls) == []
        assert secret_key.encode() == b"s3cret-key"  # as transfers/outbox.py and Django's signing use it
        assert _ssm_calls(calls) == ["GetParameters"]
        assert (str(sp_key), str(sp_cert), str(secret_key)) == ("sp-key", "sp-cert", "s3cret-key")
    assert _ssm_calls(calls) == ["GetParameters"]


def test_an_environment_variable_stands_in_without_any_call(path, monkeypatch):
    monkeypatch.setenv("FXFER_SECRET_KEY", "from-the-environment")
    with recording() as calls:
        value = env.secret("FXFER_SECRET_KEY", path=path)
    assert value == "from-the-environment" and isinstance(value, str)
    assert _ssm_calls(calls) == []


def test_a_missing_parameter_is_named_and_a_later_use_reads_again(path):
    _put(path, FXFER_SECRET_KEY="s3cret-key")
    secret_key, sp_key = env.secret("FXFER_SECRET_KEY", path=path), env.secret("FXFER_SAML_SP_KEY", path=path)
    with pytest.raises(ImproperlyConfigured, match=f"{path}FXFER_SAML_SP_KEY") as refused:
        str(secret_key)
    assert f"{path}FXFER_SECRET_KEY" not in str(refused.value)
    _put(path, FXFER_SAML_SP_KEY="sp-key")
    assert (str(secret_key), str(sp_key)) == ("s3cret-key", "sp-key")


@pytest.mark.parametrize("kind", [ERROR, TIMEOUT, LOST])
def test_a_failure_botocore_retries_away_still_gives_the_secret(path, kind):
    _put(path, FXFER_SECRET_KEY="s3cret-key")
    with inject(kind, service="ssm", operation="GetParameters") as fault:
        assert str(env.secret("FXFER_SECRET_KEY", path=path)) == "s3cret-key"
    assert fault.fired == 1


@pytest.mark.parametrize("kind", [ERROR, TIMEOUT])
def test_ssm_failing_past_the_retries_fails_that_use_only(path, kind):
    _put(path, FXFER_SECRET_KEY="s3cret-key")
    secret_key = env.secret("FXFER_SECRET_KEY", path=path)
    with inject(kind, service="ssm", operation="GetParameters", times=10), pytest.raises(Exception) as failed:
        str(secret_key)
    assert aws.transient(failed.value)
    # Nothing wrong was kept: the next use reads it.
    with recording() as calls:
        assert str(secret_key) == "s3cret-key"
    assert _ssm_calls(calls) == ["GetParameters"]
