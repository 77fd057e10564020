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
# The malware scan's stand-in (transfers.services.scanning): it decides when a file is verified (EICAR: infected).
FXFER_SCANNER = env.optional("FXFER_SCANNER", "eicar").lower()
INSTALLED_APPS = [*INSTALLED_APPS, "devtools"]  # noqa: F405
# Supervisor approval on by default here, so the demo shows it: a transfer outside example.com waits for the
# sender's manager (the demo identities carry one: alice's is dave); the demo approvers' group is the fallback.
FXFER_APPROVAL = env.optional("FXFER_APPROVAL", "external").lower()
# The demo company's own domain (its people are @example.com): the mis-send dialog asks only about the others.
FXFER_INTERNAL_DOMAINS = env.listing("FXFER_INTERNAL_DOMAINS", ("example.com",))
FXFER_APPROVAL_ALLOWED_DOMAINS = env.listing("FXFER_APPROVAL_ALLOWED_DOMAINS", tuple(FXFER_INTERNAL_DOMAINS))
FXFER_APPROVAL_GROUP = env.optional("FXFER_APPROVAL_GROUP", "3c8d2e1f-6a4b-4d5c-8e7f-1a2b3c4d5e6f")

# --- Accounts / SAML ---------------------------------------------------------------------------------------
# The company's IdP when FXFER_SAML_IDP_* are set (an admin trying fxfer against their Entra test tenant), else the
# built-in IdP (devtools/idp, pysaml2) with its demo identities. Either way the environment's groups win.
from django.core.exceptions import ImproperlyConfigured  # noqa: E402

from devtools.idp.settings import ROLE_GROUP_VARIABLES, local_idp_settings, trusted_idp_from_environment  # noqa: E402

_builtin_idp = local_idp_settings(base_url=FXFER_BASE_URL, keys_dir=_DEV, label="local")  # noqa: F405
if trusted_idp_from_environment():
    # base.py has read FXFER_SAML_IDP_* and the groups from the environment; they stay.
    FXFER_LOCAL_IDP = False  # not mounted: nothing it signs is trusted, so it would only mislead
    FXFER_SAML_SP_KEY = FXFER_SAML_SP_KEY or _builtin_idp["FXFER_SAML_SP_KEY"]  # noqa: F405
    FXFER_SAML_SP_CERT = FXFER_SAML_SP_CERT or _builtin_idp["FXFER_SAML_SP_CERT"]  # noqa: F405
    if not any(FXFER_ROLE_GROUPS.values()):  # noqa: F405
        raise ImproperlyConfigured(
            "With your own IdP (FXFER_SAML_IDP_*), set FXFER_EMPLOYEE_GROUPS and/or FXFER_COMPLIANCE_GROUPS to "
            "its group ids: otherwise fxfer admits nobody."
        )
    # The IdP posts to the ACS from another site: the sign-in's binding cookie must cross sites to come back,
    # and browsers accept the Secure flag that needs from http://localhost (use that address, not 127.0.0.1).
    FXFER_SAML_BINDING_COOKIE_CROSS_SITE = True
else:
    _env_groups = dict(FXFER_ROLE_GROUPS)  # noqa: F405
    globals().update(_builtin_idp)
    FXFER_ROLE_GROUPS = {
        role: _env_groups[role] if env.optional(variable) else _builtin_idp["FXFER_ROLE_GROUPS"][role]
        for role, variable in ROLE_GROUP_VARIABLES.items()
    }
