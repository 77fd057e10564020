import os

from django.apps import AppConfig


class FxferConfig(AppConfig):
    name = "fxfer"
    verbose_name = "fxfer"

    def ready(self) -> None:
        # On Lambda with active tracing (zappa_settings "xray_tracing"), trace every AWS call as a subsegment.
        if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") and os.environ.get("AWS_XRAY_DAEMON_ADDRESS"):
            from aws_xray_sdk.core import patch

            patch(("botocore",))
