"""zappa_settings.json: the stages, the schedule and the event source the issue asks for, and nothing secret."""

import json
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from devtools import lambda_local, package, placeholders
from devtools.package import stage_settings
from fxfer.provisioning import FILES_PREFIX

STAGES = ("dev", "prod")


def _event(stage: str, function: str) -> dict:
    return next(e for e in stage_settings(stage)["events"] if e["function"] == function)


def test_prod_extends_dev():
    raw = json.loads(package.ZAPPA_SETTINGS.read_text())
    assert set(raw) == set(STAGES)
    assert raw["prod"]["extends"] == "dev"


@pytest.mark.parametrize("stage", STAGES)
def test_runtime_region_tracing_and_no_keep_warm(stage):
    settings = stage_settings(stage)
    assert settings["runtime"] == "python3.13"
    assert settings["aws_region"] == lambda_local.REGION == "ap-northeast-1"
    assert settings["django_settings"] == "fxfer.settings.production"
    assert settings["xray_tracing"] is True
    assert settings["keep_warm"] is False
    # Zappa's default log level DEBUG prints every remote environment value (the secrets) to the log.
    assert settings["log_level"] in {"INFO", "WARNING", "ERROR"}
    # WhiteNoise answers gzip and images: API Gateway must pass binary bodies.
    assert settings["binary_support"] is True
    assert settings["environment_variables"]["FXFER_STAGE"] == stage


@pytest.mark.parametrize("stage", STAGES)
def test_the_daily_aggregation_runs_at_00_10_tokyo(stage):
    minute, hour, *rest = re.fullmatch(r"cron\((.*)\)", _event(stage, "reports.jobs.aggregate_daily")["expression"])[
        1
    ].split()
    assert rest == ["*", "*", "?", "*"]
    # EventBridge rules run on UTC.
    fires = datetime(2026, 11, 27, int(hour), int(minute), tzinfo=UTC).astimezone(ZoneInfo("Asia/Tokyo"))
    assert (fires.hour, fires.minute) == (0, 10)


@pytest.mark.parametrize("stage", STAGES)
def test_the_expiry_sweep_runs_hourly(stage):
    assert _event(stage, "transfers.jobs.expire_sweep")["expression"] == "rate(1 hour)"


@pytest.mark.parametrize("stage", STAGES)
def test_object_created_in_the_stages_bucket_reaches_the_upload_entry_point(stage):
    settings = stage_settings(stage)
    source = _event(stage, "transfers.jobs.on_object_created")["event_source"]
    assert source["arn"] == f"arn:aws:s3:::{settings['environment_variables']['FXFER_BUCKET']}"
    assert source["events"] == ["s3:ObjectCreated:*"]
    # Zappa 0.63 reads "prefix" (an unknown key would silently subscribe the whole bucket).
    assert source["prefix"] == FILES_PREFIX


def test_no_account_ids_or_secrets():
    text = package.ZAPPA_SETTINGS.read_text()
    assert not re.search(r"\d{12}", text), "an AWS account id"
    for stage in STAGES:
        assert not set(placeholders.secret_production_names()) & set(stage_settings(stage)["environment_variables"])


@pytest.mark.parametrize("stage", STAGES)
def test_every_required_variable_is_a_lambda_variable_and_nothing_is_read_from_s3_at_start(stage):
    """Zappa's remote_env read an S3 object at every cold start (~75 ms: a boto3 session and resource, a
    GetObject): the non-secret values are Lambda environment variables, the secrets SSM parameters read on first
    use (fxfer.env.secret)."""
    settings = stage_settings(stage)
    assert "remote_env" not in settings
    assert set(placeholders.required_production_names()) <= set(settings["environment_variables"])
    # Lambda's limit on all of a function's environment variables together.
    assert len(json.dumps(settings["environment_variables"])) < 4096


@pytest.mark.parametrize("stage", STAGES)
def test_the_front_door_is_api_gateways_rest_api_and_nothing_beside_it(stage, tmp_path, monkeypatch):
    """docs/cost.md, "The front door": the REST API (v1) is the only one of the three that Zappa 0.63 both
    deploys and gives a custom domain (`zappa certify` calls the v1 API only), and the one a WAF web ACL attaches
    to without a public origin beside it. A Function URL next to it would be a second, unfiltered way in."""
    from zappa.cli import ZappaCLI

    monkeypatch.chdir(tmp_path)  # Zappa may write beside the settings it reads; not in the repository
    cli = ZappaCLI()
    cli.api_stage = stage
    cli.load_settings(str(package.ZAPPA_SETTINGS))
    assert cli.use_apigateway is True
    assert cli.apigateway_version == "v1"
    assert cli.use_function_url is False
    # Edge-optimized: Zappa's handler takes REMOTE_ADDR from the second-to-last X-Forwarded-For entry, which is
    # the client only when API Gateway's own CloudFront hop is last. On a REGIONAL API (or an HTTP API) it is
    # whatever the client sent, and the per-IP rate limits and the audit trail's addresses could be forged.
    assert cli.endpoint_configuration == ["EDGE"]
    # Read as Zappa reads it, and written out, so a default that changes in a later Zappa changes nothing here.
    settings = stage_settings(stage)
    assert (settings["apigateway_enabled"], settings["apigateway_version"], settings["function_url_enabled"]) == (
        True,
        "v1",
        False,
    )


@pytest.mark.parametrize("stage", STAGES)
def test_the_function_runs_as_its_own_least_privilege_role(stage, tmp_path, monkeypatch):
    """Zappa neither creates nor changes a role (its default attaches a broad policy: s3:*, dynamodb:*, ...):
    the function runs as the role the operator made from `manage.py iam_policy` (fxfer/iam.py)."""
    from zappa.cli import ZappaCLI

    monkeypatch.chdir(tmp_path)
    cli = ZappaCLI()
    cli.api_stage = stage
    cli.load_settings(str(package.ZAPPA_SETTINGS))
    assert cli.manage_roles is False
    # The account id is the operator's to fill in, like the SNS event source's.
    assert cli.zappa.credentials_arn == f"arn:aws:iam::ACCOUNT_ID:role/fxfer-{stage}-lambda"
