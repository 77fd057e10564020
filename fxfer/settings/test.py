"""Tests. The fast tier runs on in-process moto (no endpoints); the integration tier sets the endpoints of
the stand-ins it starts through the environment before Django loads."""

from fxfer import env
from fxfer.settings.base import *  # noqa: F403

DEBUG = False
SECRET_KEY = "test-only-not-secret"  # noqa: S105 - tests only
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
FXFER_STAGE = env.optional("FXFER_STAGE", "test")
FXFER_BUCKET = env.optional("FXFER_BUCKET", "fxfer-test-transfers")
FXFER_KMS_KEY_ID = env.optional("FXFER_KMS_KEY_ID", "alias/fxfer-test")
FXFER_DEV_MAILBOX = True
# Static files straight from the app folders, no collectstatic needed.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
FXFER_SES_VERIFY_SENDER = True
INSTALLED_APPS = [*INSTALLED_APPS, "devtools"]  # noqa: F405
STORAGES = {"staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}

# --- Accounts / SAML: the local IdP (devtools/idp, pysaml2) with throwaway keys of this process -------------
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from devtools import devkeys  # noqa: E402

_SAML_KEYS = Path(tempfile.mkdtemp(prefix="fxfer-test-saml-"))
devkeys.self_signed("fxfer test SP", _SAML_KEYS, "saml-sp")
devkeys.self_signed("fxfer test IdP", _SAML_KEYS, "saml-idp")
FXFER_LOCAL_IDP = True
FXFER_LOCAL_IDP_KEY_FILE = str(_SAML_KEYS / "saml-idp.key")
FXFER_LOCAL_IDP_CERT_FILE = str(_SAML_KEYS / "saml-idp.crt")
FXFER_SAML_SP_KEY = (_SAML_KEYS / "saml-sp.key").read_text()
FXFER_SAML_SP_CERT = (_SAML_KEYS / "saml-sp.crt").read_text()
FXFER_SAML_IDP_CERTS = (_SAML_KEYS / "saml-idp.crt").read_text()
FXFER_SAML_IDP_ENTITY_ID = f"{FXFER_BASE_URL}/idp/metadata/"  # noqa: F405
FXFER_SAML_IDP_SSO_URL = f"{FXFER_BASE_URL}/idp/sso/"  # noqa: F405
FXFER_SAML_IDP_SLO_URL = f"{FXFER_BASE_URL}/idp/slo/"  # noqa: F405
FXFER_ROLE_GROUPS = {
    "employee": ["5e7c1a0e-3d4b-4f3a-9a57-0c1d2e3f4a5b"],
    "compliance": ["9b2f6c4d-8e1a-4c7b-b3d2-6a5f4e3d2c1b"],
}
