"""Tests. The fast tier runs on in-process moto (no endpoints); the integration tier sets the endpoints of
the stand-ins it starts through the environment before Django loads."""

from fxfer import env
from fxfer.settings.base import *  # noqa: F403

DEBUG = False
SECRET_KEY = "test-only-not-secret"  # noqa: S105 - tests only
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
FXFER_STAGE = env.optional("FXFER_STAGE", "test")
globals().update(stage_resources(FXFER_STAGE))  # noqa: F405
FXFER_BUCKET = env.optional("FXFER_BUCKET", "fxfer-test-transfers")
FXFER_KMS_KEY_ID = env.optional("FXFER_KMS_KEY_ID", "alias/fxfer-test")
FXFER_DEV_MAILBOX = True
# Static files straight from the app folders, no collectstatic needed.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
FXFER_SES_VERIFY_SENDER = True
# The malware scan's stand-in (transfers.services.scanning): it decides when a file is verified (EICAR: infected).
FXFER_SCANNER = env.optional("FXFER_SCANNER", "eicar").lower()
INSTALLED_APPS = [*INSTALLED_APPS, "devtools"]  # noqa: F405
STORAGES = {"staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
# Mis-send prevention is off for the tests that do not test it (tests/transfers/test_missend*.py turn it on).
FXFER_CONFIRM_RECIPIENTS = env.optional("FXFER_CONFIRM_RECIPIENTS", "off")
FXFER_SEND_HOLD_SECONDS = env.integer("FXFER_SEND_HOLD_SECONDS", 0)

# --- Accounts / SAML: the local IdP (devtools/idp, pysaml2) with throwaway keys of this process -------------
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from devtools.idp.settings import local_idp_settings  # noqa: E402

_SAML_KEYS = Path(tempfile.mkdtemp(prefix="fxfer-test-saml-"))
globals().update(local_idp_settings(base_url=FXFER_BASE_URL, keys_dir=_SAML_KEYS, label="test"))  # noqa: F405
