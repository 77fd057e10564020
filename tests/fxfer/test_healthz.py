"""/healthz: 200 when DynamoDB and S3 answer, 503 naming what failed."""

import boto3
import pytest
from django.conf import settings

from fxfer import dynamo


def test_healthy(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"dynamodb": "ok", "s3": "ok"}}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.fresh_world
def test_missing_bucket_is_503_naming_s3(client):
    s3 = boto3.client("s3", region_name=settings.FXFER_AWS_REGION)
    s3.delete_bucket(Bucket=settings.FXFER_BUCKET)
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["dynamodb"] == "ok"
    assert body["checks"]["s3"].startswith("S3 answered")


@pytest.mark.fresh_world
def test_missing_table_is_503_naming_dynamodb(client):
    boto3.client("dynamodb", region_name=settings.FXFER_AWS_REGION).delete_table(
        TableName=dynamo.table_name("audit-chain")
    )
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["dynamodb"] == "DynamoDB answered ResourceNotFoundException"
    assert response.json()["checks"]["s3"] == "ok"


def test_unreachable_endpoint_is_503_quickly(client, settings):
    settings.FXFER_S3_ENDPOINT = "http://127.0.0.1:9"  # discard port: nothing listens
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["s3"].startswith("S3 unreachable")


def test_only_get_and_head(client):
    assert client.post("/healthz").status_code == 405
    assert client.head("/healthz").status_code == 200
