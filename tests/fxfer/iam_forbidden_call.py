"""Run only by tests/fxfer/test_iam_policy.py, in a pytest of its own (its name is not test_*.py): application code
makes a call the Lambda role's policy does not allow, and tests/awscalls.py must fail this test for it."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_application_code_changes_the_bucket_policy(settings):
    from fxfer import aws

    namespace = {"s3": aws.client("s3"), "bucket": settings.FXFER_BUCKET}
    # Compiled as transfers/storage.py: to the recorder, a line of the application.
    code = compile(
        "def run():\n    s3.put_bucket_policy(Bucket=bucket, Policy='{}')\n", str(ROOT / "transfers/storage.py"), "exec"
    )
    exec(code, namespace)  # noqa: S102 - a frame that belongs to transfers/storage.py
    try:
        namespace["run"]()
    except Exception:  # noqa: S110 - moto may refuse the empty policy; the call was made either way
        pass
