"""Fast tier: every test runs on in-process moto, freshly provisioned by the same code production uses."""

import os

import pytest

_INTEGRATION = bool(os.environ.get("FXFER_DYNAMODB_ENDPOINT"))

if not _INTEGRATION:
    # Fake credentials before anything builds a boto3 client; never real ones in tests.
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "ap-northeast-1",
    }.items():
        os.environ[name] = value


def pytest_collection_modifyitems(config, items):
    """The integration tier needs the stand-ins (python -m devtools.stack); the fast tier must not hit them."""
    for item in items:
        if item.get_closest_marker("integration") and not _INTEGRATION:
            item.add_marker(pytest.mark.skip(reason="needs the local stand-ins: make test-integration"))


@pytest.fixture(autouse=True)
def aws(request):
    """In-process moto with every table, the KMS key, the bucket and the SES sender provisioned."""
    if _INTEGRATION:
        yield
        return
    from moto import mock_aws

    from fxfer.provisioning import provision

    with mock_aws():
        list(provision())
        yield
