"""`make run`: the product on this machine, on local stand-ins for AWS (see devtools/run.py)."""

import secrets

from fxfer import env
from fxfer.settings.base import *  # noqa: F403
from fxfer.settings.base import BASE_DIR

DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

_DEV = BASE_DIR / ".dev"
_key_file = _DEV / "secret_key"
# Generated at set-up time (make dev-keys); never committed.
SECRET_KEY = _key_file.read_text().strip() if _key_file.exists() else secrets.token_urlsafe(50)

FXFER_STAGE = env.optional("FXFER_STAGE", "local")
globals().update(stage_resources(FXFER_STAGE))  # noqa: F405
FXFER_DYNAMODB_ENDPOINT = env.optional("FXFER_DYNAMODB_ENDPOINT", "http://127.0.0.1:5000")
FXFER_SES_ENDPOINT = env.optional("FXFER_SES_ENDPOINT", "http://127.0.0.1:5000")
FXFER_SNS_ENDPOINT = env.optional("FXFER_SNS_ENDPOINT", FXFER_DYNAMODB_ENDPOINT)
FXFER_SQS_ENDPOINT = env.optional("FXFER_SQS_ENDPOINT", FXFER_DYNAMODB_ENDPOINT)
FXFER_S3_ENDPOINT = env.optional("FXFER_S3_ENDPOINT", "http://127.0.0.1:4566")
FXFER_KMS_ENDPOINT = env.optional("FXFER_KMS_ENDPOINT", FXFER_S3_ENDPOINT)
FXFER_BUCKET = env.optional("FXFER_BUCKET", "fxfer-local-transfers")
FXFER_KMS_KEY_ID = env.optional("FXFER_KMS_KEY_ID", "alias/fxfer-local")
AWS_SES_REGION_ENDPOINT_URL = FXFER_SES_ENDPOINT

# The local mailbox page reads what the SES stand-in received.
FXFER_DEV_MAILBOX = True
# Static files straight from the app folders, no collectstatic needed.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
FXFER_SES_VERIFY_SENDER = True
INSTALLED_APPS = [*INSTALLED_APPS, "devtools"]  # noqa: F405

# --- Accounts / SAML: the local IdP (devtools/idp, pysaml2) stands in for the company's -------------------
from devtools.idp.settings import local_idp_settings  # noqa: E402

globals().update(local_idp_settings(base_url=FXFER_BASE_URL, keys_dir=_DEV, label="local"))  # noqa: F405
