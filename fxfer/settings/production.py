"""Production (AWS Lambda through Zappa). Every stage value comes from the environment (zappa_settings.json); a
missing one stops the process at start with its name. The secrets come from SSM Parameter Store, read on first
use; a missing one fails that use with its name."""

from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from fxfer import env
from fxfer.settings.base import *  # noqa: F403

DEBUG = False
FXFER_STAGE = env.required("FXFER_STAGE")
# The stage's SSM parameters (docs/deploy.md, step 6): the secrets, and the SAML certificates (too long for
# Lambda's 4 KB of environment variables). Read on first use, not at start (fxfer.env.secret).
FXFER_SSM_PATH = env.optional("FXFER_SSM_PATH", f"/fxfer/{FXFER_STAGE}/")
SECRET_KEY = env.secret("FXFER_SECRET_KEY", path=FXFER_SSM_PATH)
globals().update(stage_resources(FXFER_STAGE, lambda_function=f"fxfer-{FXFER_STAGE}"))  # noqa: F405
FXFER_BASE_URL = env.required("FXFER_BASE_URL").rstrip("/")
FXFER_BUCKET = env.required("FXFER_BUCKET")
FXFER_KMS_KEY_ID = env.required("FXFER_KMS_KEY_ID")
DEFAULT_FROM_EMAIL = SERVER_EMAIL = env.required("FXFER_FROM_EMAIL")

_base = urlsplit(FXFER_BASE_URL)
if _base.scheme != "https" or not _base.hostname:
    raise ImproperlyConfigured(f"FXFER_BASE_URL must be an https:// URL, not {FXFER_BASE_URL!r}.")
# The public host, plus any API Gateway host the operator lists (before a custom domain exists).
ALLOWED_HOSTS = [_base.hostname, *env.listing("FXFER_EXTRA_HOSTS")]
CSRF_TRUSTED_ORIGINS = [f"https://{_base.netloc}"]

# --- Static files: off Lambda (fxfer/static.py, docs/deploy.md step 7) ------------------------------------------
# Hashed names in the stage's static bucket, read by browsers through its CloudFront distribution: STATIC_URL is
# that origin ("https://d1234.cloudfront.net/"), and the Content-Security-Policy names it. `collectstatic` uploads
# them at deploy time (FXFER_STATIC_BUCKET: deploy time and `provision` only); the function reads only the manifest
# the package ships, so a page costs one Lambda call and no S3 call. WhiteNoise is not needed here.
FXFER_STATIC_URL = env.required("FXFER_STATIC_URL").rstrip("/") + "/"
_static = urlsplit(FXFER_STATIC_URL)
if _static.scheme != "https" or not _static.hostname or _static.query or _static.fragment:
    raise ImproperlyConfigured(f"FXFER_STATIC_URL must be an https:// URL, not {FXFER_STATIC_URL!r}.")
STATIC_URL = FXFER_STATIC_URL
FXFER_STATIC_BUCKET = env.optional("FXFER_STATIC_BUCKET")
FXFER_STATIC_MANIFEST_DIR = BASE_DIR / "fxfer" / "static_manifest"  # noqa: F405
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "fxfer.static.StaticStorage"}}  # noqa: F405
MIDDLEWARE = [m for m in MIDDLEWARE if m != "whitenoise.middleware.WhiteNoiseMiddleware"]  # noqa: F405

# API Gateway terminates TLS and always sets X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = True
SECURE_HSTS_SECONDS = 31536000
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
# "preload" in the header of a subdomain has no effect until the company submits its apex domain, so it costs
# nothing here and keeps the deployment checks clean.
SECURE_HSTS_PRELOAD = env.boolean("FXFER_HSTS_PRELOAD", True)

# __Host- cookies: Secure, path /, no Domain, so a sibling subdomain can neither read nor plant them.
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_NAME = "__Host-fxfer-session"
CSRF_COOKIE_SECURE = True
LANGUAGE_COOKIE_SECURE = True
LANGUAGE_COOKIE_NAME = "__Host-fxfer-lang"
CSRF_COOKIE_NAME = "__Host-fxfer-csrf"

# --- Accounts / SAML: the company IdP (README, "Connect your IdP") -----------------------------------------
FXFER_SAML_IDP_ENTITY_ID = env.required("FXFER_SAML_IDP_ENTITY_ID")
FXFER_SAML_IDP_SSO_URL = env.required("FXFER_SAML_IDP_SSO_URL")
FXFER_SAML_IDP_SLO_URL = env.optional("FXFER_SAML_IDP_SLO_URL")
FXFER_SAML_IDP_CERTS = env.secret("FXFER_SAML_IDP_CERTS", path=FXFER_SSM_PATH)
FXFER_SAML_SP_KEY = env.secret("FXFER_SAML_SP_KEY", path=FXFER_SSM_PATH)
FXFER_SAML_SP_CERT = env.secret("FXFER_SAML_SP_CERT", path=FXFER_SSM_PATH)
# Comma-separated IdP group values (Entra ID: group object ids) for each role.
FXFER_ROLE_GROUPS = {
    "employee": env.required_listing("FXFER_EMPLOYEE_GROUPS"),
    "compliance": env.required_listing("FXFER_COMPLIANCE_GROUPS"),
}
