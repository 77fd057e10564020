"""The fast tier provisions moto once per process and puts it back before each test (tests/moto_world.py): what
one test writes, deletes or changes must be gone for the next, or a test could pass on another's leftovers."""

import boto3
import pytest
from django.conf import settings

from fxfer import dynamo
from tests import moto_world

_KINDS = {"S": "x", "N": "1", "B": b"x"}


def _client(service: str):
    return boto3.client(service, region_name=settings.FXFER_AWS_REGION)


def _tables() -> list[str]:
    return sorted(model.Meta.table_name for model in dynamo.all_models())


def _queue_url() -> str:
    return _client("sqs").get_queue_url(QueueName=settings.FXFER_FAILED_EVENTS_QUEUE)["QueueUrl"]


def _leave_something_everywhere() -> None:
    """An item in every table, a table deleted, objects, versions and a multipart upload in the bucket, its
    policy and CORS rule removed, a mail sent, a message queued, the KMS key disabled."""
    ddb = _client("dynamodb")
    for name in _tables():
        table = ddb.describe_table(TableName=name)["Table"]
        kinds = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
        item = {
            k["AttributeName"]: {kinds[k["AttributeName"]]: _KINDS[kinds[k["AttributeName"]]]}
            for k in table["KeySchema"]
        }
        ddb.put_item(TableName=name, Item=item)
    ddb.delete_table(TableName=_tables()[0])
    s3 = _client("s3")
    bucket = settings.FXFER_BUCKET
    s3.delete_bucket_policy(Bucket=bucket)  # moto ignores its conditions: each Deny would deny every request
    for body in (b"one", b"two"):
        s3.put_object(Bucket=bucket, Key="files/leftover", Body=body)
    s3.create_multipart_upload(Bucket=bucket, Key="files/unfinished")
    s3.delete_bucket_cors(Bucket=bucket)
    _client("ses").send_email(
        Source=settings.DEFAULT_FROM_EMAIL,
        Destination={"ToAddresses": ["someone@partner.example"]},
        Message={"Subject": {"Data": "left over"}, "Body": {"Text": {"Data": "left over"}}},
    )
    _client("sqs").send_message(QueueUrl=_queue_url(), MessageBody="left over")
    kms = _client("kms")
    kms.disable_key(KeyId=kms.describe_key(KeyId=settings.FXFER_KMS_KEY_ID)["KeyMetadata"]["KeyId"])


def _assert_as_provisioned() -> None:
    ddb = _client("dynamodb")
    assert set(_tables()) <= set(ddb.list_tables()["TableNames"])
    for name in _tables():
        assert ddb.scan(TableName=name)["Items"] == [], name
    s3 = _client("s3")
    bucket = settings.FXFER_BUCKET
    versions = s3.list_object_versions(Bucket=bucket)
    assert versions.get("Versions", []) == [] and versions.get("DeleteMarkers", []) == []
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert s3.get_bucket_policy(Bucket=bucket)["Policy"]
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert _client("ses").get_send_quota()["SentLast24Hours"] == 0
    attributes = _client("sqs").get_queue_attributes(QueueUrl=_queue_url(), AttributeNames=["All"])["Attributes"]
    assert (attributes["ApproximateNumberOfMessages"], attributes["ApproximateNumberOfMessagesNotVisible"]) == (
        "0",
        "0",
    )
    key = _client("kms").describe_key(KeyId=settings.FXFER_KMS_KEY_ID)["KeyMetadata"]
    assert key["KeyState"] == "Enabled"


def test_what_a_test_leaves_is_gone_after_the_reset():
    _assert_as_provisioned()
    _leave_something_everywhere()
    moto_world.restore()  # what the autouse `aws` fixture does before every test
    _assert_as_provisioned()


def test_the_world_is_as_provisioned_after_a_reset():
    """After the reset the world is the provisioned one: provisioning again changes nothing."""
    from fxfer.provisioning import UNCHANGED, provision

    _leave_something_everywhere()
    moto_world.restore()
    changed = [s for s in provision() if s.action != UNCHANGED and s.resource.split()[0] != "ses"]
    assert changed == []


# The pair below checks the fixture itself: run in file order in one process (pytest-xdist may send them to two
# processes, where the second still checks a world some other test used).
def test_a_test_leaves_something_everywhere():
    _leave_something_everywhere()


def test_the_next_test_finds_nothing_of_it():
    _assert_as_provisioned()


@pytest.mark.fresh_world
def test_a_fresh_world_is_provisioned_too():
    _assert_as_provisioned()
    _leave_something_everywhere()
