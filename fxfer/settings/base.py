"""Settings shared by every stage. Stage modules (local, test, production) fill in the rest."""

from pathlib import Path

from django.utils.translation import gettext_lazy as _

from fxfer import env

BASE_DIR = Path(__file__).resolve().parent.parent.parent

# --- Django core -------------------------------------------------------------------------------------------
# DynamoDB is the only datastore: an empty DATABASES makes any stray ORM query fail loudly.
DATABASES: dict = {}

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "reports.apps.ComplianceAdminConfig",  # django.contrib.admin with the compliance site (reports.admin)
    "fxfer.apps.FxferConfig",
    "accounts",
    "transfers",
    "reports",
]

MIDDLEWARE = [
    # First: its request line and latency cover every other middleware.
    "fxfer.middleware.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "fxfer.middleware.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "fxfer.urls"
# Django's cookie-then-session messages, without reading SECRET_KEY on requests that carry no message (fxfer.messages).
MESSAGE_STORAGE = "fxfer.messages.MessageStorage"
WSGI_APPLICATION = "fxfer.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Language and time -------------------------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("ja", _("Japanese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
# The browser's preference (LocaleMiddleware) unless the person chose on the page (set_language): that choice is
# remembered in this cookie for a year; it holds only "en" or "ja" and no script needs it.
LANGUAGE_COOKIE_AGE = 365 * 24 * 60 * 60
LANGUAGE_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SAMESITE = "Lax"
FORMAT_MODULE_PATH = ["fxfer.formats"]  # our own date formats (fxfer/formats/<lang>/formats.py)
USE_I18N = True
USE_TZ = True
TIME_ZONE = env.optional("FXFER_TIME_ZONE", "Asia/Tokyo")  # local time at the edges; UTC inside

# --- Static files: their own place (WhiteNoise), never the transfer bucket ---------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- Security defaults (stage modules tighten further) -----------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# --- AWS -------------------------------------------------------------------------------------------------
# Stage name: prefixes every table so dev and prod can share an account.
FXFER_STAGE = env.optional("FXFER_STAGE", "dev")
FXFER_AWS_REGION = env.optional("FXFER_AWS_REGION", env.optional("AWS_REGION", "ap-northeast-1"))
# Endpoints of local stand-ins; empty means real AWS.
FXFER_DYNAMODB_ENDPOINT = env.optional("FXFER_DYNAMODB_ENDPOINT")
FXFER_S3_ENDPOINT = env.optional("FXFER_S3_ENDPOINT")
FXFER_KMS_ENDPOINT = env.optional("FXFER_KMS_ENDPOINT", FXFER_S3_ENDPOINT)
FXFER_SES_ENDPOINT = env.optional("FXFER_SES_ENDPOINT")
# Provisioning only: the SNS topic of SES bounces and complaints, the queue of failed async events, and the
# function's async settings (local stand-ins: moto serves all three).
FXFER_SNS_ENDPOINT = env.optional("FXFER_SNS_ENDPOINT")
FXFER_SQS_ENDPOINT = env.optional("FXFER_SQS_ENDPOINT")
FXFER_LAMBDA_ENDPOINT = env.optional("FXFER_LAMBDA_ENDPOINT")
# Provisioning only: the alarms (CloudWatch) and the function's log retention (CloudWatch Logs).
FXFER_CLOUDWATCH_ENDPOINT = env.optional("FXFER_CLOUDWATCH_ENDPOINT")
FXFER_LOGS_ENDPOINT = env.optional("FXFER_LOGS_ENDPOINT")
# Production's secrets (fxfer.env.secret): SSM Parameter Store.
FXFER_SSM_ENDPOINT = env.optional("FXFER_SSM_ENDPOINT")
FXFER_BUCKET = env.optional("FXFER_BUCKET")
# Alias ("alias/fxfer-prod") or key ARN of the customer-managed KMS key that encrypts every file.
FXFER_KMS_KEY_ID = env.optional("FXFER_KMS_KEY_ID")
# The public origin of the site. SAML URLs, mail links and S3 CORS are built from it, never from Host.
FXFER_BASE_URL = env.optional("FXFER_BASE_URL", "http://127.0.0.1:8000").rstrip("/")

# --- Retention ---------------------------------------------------------------------------------------------
FXFER_DEFAULT_EXPIRY_DAYS = env.integer("FXFER_DEFAULT_EXPIRY_DAYS", 7)
# The longest a file may stay. The S3 lifecycle backstop deletes objects one day after this.
FXFER_MAX_RETENTION_DAYS = env.integer("FXFER_MAX_RETENTION_DAYS", 30)
# Transfer metadata and audit events are kept this long, then removed; never earlier.
FXFER_AUDIT_RETENTION_DAYS = env.integer("FXFER_AUDIT_RETENTION_DAYS", 3 * 365)
# Audit events of one day are spread over this many index partitions so a busy day's aggregation can fan out.
FXFER_AUDIT_DAY_SHARDS = env.integer("FXFER_AUDIT_DAY_SHARDS", 4)

# --- Transfers: upload policy, guest access (issue 4) -------------------------------------------------------
# Checked before any byte moves; a violation is refused with a clear message.
FXFER_MAX_FILE_BYTES = env.integer("FXFER_MAX_FILE_BYTES", 50 * 1024**3)
FXFER_MAX_FILES = env.integer("FXFER_MAX_FILES", 100)
FXFER_MAX_TRANSFER_BYTES = env.integer("FXFER_MAX_TRANSFER_BYTES", 100 * 1024**3)
FXFER_MAX_RECIPIENTS = env.integer("FXFER_MAX_RECIPIENTS", 20)
# Each employee's bytes in flight: declared in their transfers whose files are still kept (from creation until
# expiry or deletion). 200 GiB holds two transfers of the largest size at once, or many ordinary ones, while
# one person cannot park terabytes; at S3 Standard prices a full quota kept the longest retention costs a few
# dollars. Compliance raises (or lowers) it per person in the admin. Upload requests do not count: what guests
# send is bounded by each request's own limits, and a guest must not be able to use up the employee's quota.
FXFER_USER_QUOTA_BYTES = env.integer("FXFER_USER_QUOTA_BYTES", 200 * 1024**3)
# Refused anywhere in a file name's extensions ("report.pdf.exe", "x.EXE.zip"), case-insensitively.
FXFER_BLOCKED_EXTENSIONS = env.listing(
    "FXFER_BLOCKED_EXTENSIONS",
    (
        "exe", "bat", "cmd", "com", "scr", "pif", "cpl", "msi", "msp", "mst", "dll", "sys", "drv", "ocx",
        "js", "jse", "vbs", "vbe", "wsf", "wsh", "ws", "wsc", "hta", "ps1", "ps1xml", "ps2", "psc1", "psm1",
        "jar", "lnk", "scf", "inf", "reg", "application", "gadget", "appx", "msix", "iso", "img", "vhd", "vhdx",
    ),
)  # fmt: skip
# Empty allow list: any domain. The deny list wins over the allow list. "example.com" covers its subdomains.
FXFER_RECIPIENT_DOMAINS_ALLOW = env.listing("FXFER_RECIPIENT_DOMAINS_ALLOW")
FXFER_RECIPIENT_DOMAINS_DENY = env.listing("FXFER_RECIPIENT_DOMAINS_DENY")
# The company's own mail domains ("example.co.jp" covers its subdomains): every other domain is outside.
FXFER_INTERNAL_DOMAINS = env.listing("FXFER_INTERNAL_DOMAINS")
# Mis-send prevention (issue 16): which recipients the sender ticks one by one before Send ("external": those
# outside FXFER_INTERNAL_DOMAINS, "all", "off"), and how long the mails wait after Send while the sender may
# still cancel (0: no hold).
FXFER_CONFIRM_RECIPIENTS = env.optional("FXFER_CONFIRM_RECIPIENTS", "external").lower()
if FXFER_CONFIRM_RECIPIENTS not in {"external", "all", "off"}:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("FXFER_CONFIRM_RECIPIENTS must be external, all or off.")
FXFER_SEND_HOLD_SECONDS = max(env.integer("FXFER_SEND_HOLD_SECONDS", 180), 0)
# A transfer may be available at most this long after it was created (never longer than files are kept).
FXFER_MAX_EXPIRY_DAYS = min(env.integer("FXFER_MAX_EXPIRY_DAYS", FXFER_MAX_RETENTION_DAYS), FXFER_MAX_RETENTION_DAYS)
FXFER_MAX_DOWNLOAD_LIMIT = env.integer("FXFER_MAX_DOWNLOAD_LIMIT", 100)
# Upload requests (issue 5): how long received files are kept after the request closes, unless the employee
# chooses otherwise (at most FXFER_MAX_RETENTION_DAYS), and the default limit of files per guest.
FXFER_REQUEST_KEEP_DAYS = min(env.integer("FXFER_REQUEST_KEEP_DAYS", 14), FXFER_MAX_RETENTION_DAYS)
FXFER_REQUEST_DEFAULT_MAX_FILES = env.integer("FXFER_REQUEST_DEFAULT_MAX_FILES", 20)
# What a request (and a transfer's replies) lets each guest send unless the employee chooses otherwise: enough
# for documents and ordinary archives, far below the site's maxima, so nobody outside can send 100 GiB by
# default. Never above the site's limits (policy.request_limits_default).
FXFER_REQUEST_DEFAULT_MAX_FILE_BYTES = env.integer("FXFER_REQUEST_DEFAULT_MAX_FILE_BYTES", 2 * 1024**3)
FXFER_REQUEST_DEFAULT_MAX_TOTAL_BYTES = env.integer("FXFER_REQUEST_DEFAULT_MAX_TOTAL_BYTES", 10 * 1024**3)
# Presigned URLs stay short-lived. A download URL only has to start its download (the browser is redirected to
# it at once; S3 checks the expiry when a GET starts, so a long download still finishes), and one issued just
# before a revoke must not outlive it by much. An upload policy lasts ten minutes.
FXFER_DOWNLOAD_URL_SECONDS = env.integer("FXFER_DOWNLOAD_URL_SECONDS", 15)
FXFER_UPLOAD_POLICY_SECONDS = env.integer("FXFER_UPLOAD_POLICY_SECONDS", 600)
# Files from this size on go up in parts; the part size grows with the file so 10,000 parts always suffice.
# 16 MiB: a 1 GiB file keeps Chromium's 6 connections to S3 busy to the end (64 MiB parts left the last round
# half empty); smaller parts cost more requests and, at completion, more CRCs for S3 to combine (bench/upload.py).
FXFER_MULTIPART_THRESHOLD = env.integer("FXFER_MULTIPART_THRESHOLD", 100 * 1024**2)
FXFER_MULTIPART_PART_BYTES = max(env.integer("FXFER_MULTIPART_PART_BYTES", 16 * 1024**2), 5 * 1024**2)
# Part URLs are signed a batch at a time as the upload proceeds, each valid briefly.
FXFER_PART_URL_BATCH = env.integer("FXFER_PART_URL_BATCH", 20)
FXFER_PART_URL_SECONDS = env.integer("FXFER_PART_URL_SECONDS", 15 * 60)
# Guests: one-time codes, the access a correct code grants, and the brakes on guessing.
FXFER_CODE_SECONDS = env.integer("FXFER_CODE_SECONDS", 10 * 60)
FXFER_CODE_ATTEMPTS = env.integer("FXFER_CODE_ATTEMPTS", 5)
FXFER_CODE_SENDS_PER_WINDOW = env.integer("FXFER_CODE_SENDS_PER_WINDOW", 3)  # per recipient, per code lifetime
FXFER_GUEST_ACCESS_SECONDS = env.integer("FXFER_GUEST_ACCESS_SECONDS", 30 * 60)
FXFER_LINK_LOOKUPS_PER_IP = env.integer("FXFER_LINK_LOOKUPS_PER_IP", 30)  # per minute
# The hourly sweep: uploads never released within this many hours are abandoned and deleted; objects under
# files/ are checked against their records at most this many keys a run (the listing continues next hour).
FXFER_ORPHAN_PENDING_HOURS = env.integer("FXFER_ORPHAN_PENDING_HOURS", 24)
FXFER_ORPHAN_KEYS_PER_RUN = env.integer("FXFER_ORPHAN_KEYS_PER_RUN", 1000)
FXFER_LINK_LOOKUP_WINDOW_SECONDS = 60

# --- Supervisor approval (issue 16): decided when a transfer is created and recorded on it ------------------
# "always", "external" (a recipient outside FXFER_APPROVAL_ALLOWED_DOMAINS, the company's own domains; "example.com"
# covers its subdomains) or "off"; over FXFER_APPROVAL_OVER_BYTES in total (0: no size rule) or a sender in one of
# FXFER_APPROVAL_DEPARTMENTS asks for it whatever the mode.
FXFER_APPROVAL = env.optional("FXFER_APPROVAL", "off").lower()
FXFER_APPROVAL_ALLOWED_DOMAINS = env.listing(
    "FXFER_APPROVAL_ALLOWED_DOMAINS", tuple(env.listing("FXFER_INTERNAL_DOMAINS"))
)
FXFER_APPROVAL_OVER_BYTES = env.integer("FXFER_APPROVAL_OVER_BYTES", 0)
FXFER_APPROVAL_DEPARTMENTS = env.listing("FXFER_APPROVAL_DEPARTMENTS")
# Who approves: "manager" (the sender's manager, from the IdP's manager attribute) or "group:<IdP group value>".
FXFER_APPROVER = env.optional("FXFER_APPROVER", "manager")
# The approvers' group: the fallback when the sender has no manager (or is their own), and where a timed-out
# request goes with FXFER_APPROVAL_ON_TIMEOUT=escalate. Its mails go to FXFER_APPROVAL_GROUP_EMAIL (a list).
FXFER_APPROVAL_GROUP = env.optional("FXFER_APPROVAL_GROUP")
FXFER_APPROVAL_GROUP_EMAIL = env.optional("FXFER_APPROVAL_GROUP_EMAIL")
FXFER_APPROVAL_TIMEOUT_HOURS = max(env.integer("FXFER_APPROVAL_TIMEOUT_HOURS", 24), 1)
FXFER_APPROVAL_ON_TIMEOUT = env.optional("FXFER_APPROVAL_ON_TIMEOUT", "reject").lower()
if FXFER_APPROVAL not in {"off", "always", "external"} or FXFER_APPROVAL_ON_TIMEOUT not in {"reject", "escalate"}:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        "FXFER_APPROVAL must be off, always or external; FXFER_APPROVAL_ON_TIMEOUT reject or escalate."
    )
if FXFER_APPROVER != "manager" and not (FXFER_APPROVER.startswith("group:") and FXFER_APPROVER[6:].strip()):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("FXFER_APPROVER must be manager or group:<group>.")

# --- Reports / admin (issue 7) -----------------------------------------------------------------------------
# Compliance staff who get the daily summary mail after the 00:10 aggregation (comma-separated); empty: none.
FXFER_COMPLIANCE_SUMMARY_TO = env.listing("FXFER_COMPLIANCE_SUMMARY_TO")
# The malware scan (issue 16, transfers.services.scanning): "guardduty" (GuardDuty Malware Protection for S3),
# "eicar" (the local stand-in) or "off" (files released unscanned; only when set so). A file with no verdict after
# FXFER_SCAN_TIMEOUT_MINUTES stays blocked, and the pages say the scan has not finished. Blocked files are told
# to FXFER_COMPLIANCE_EMAIL (comma-separated; default: the summary's addresses).
FXFER_SCANNER = env.optional("FXFER_SCANNER", "guardduty").lower()
if FXFER_SCANNER not in {"guardduty", "eicar", "off"}:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("FXFER_SCANNER must be guardduty, eicar or off.")
FXFER_SCAN_TIMEOUT_MINUTES = max(env.integer("FXFER_SCAN_TIMEOUT_MINUTES", 30), 1)
FXFER_COMPLIANCE_EMAIL = env.listing("FXFER_COMPLIANCE_EMAIL", tuple(FXFER_COMPLIANCE_SUMMARY_TO))
# The role GuardDuty assumes to scan and tag the bucket's objects (docs/deploy.md): `provision` names it in the
# Malware Protection plan it creates; empty: provision says what to do instead.
FXFER_GUARDDUTY_ROLE_ARN = env.optional("FXFER_GUARDDUTY_ROLE_ARN")
# The summary flags failed codes or failed sign-ins above this multiple of the previous 30 days' median
# (and at least FXFER_COMPLIANCE_SPIKE_MINIMUM of them), and transfers of this size or more.
FXFER_COMPLIANCE_SPIKE_FACTOR = env.integer("FXFER_COMPLIANCE_SPIKE_FACTOR", 3)
FXFER_COMPLIANCE_SPIKE_MINIMUM = env.integer("FXFER_COMPLIANCE_SPIKE_MINIMUM", 5)
FXFER_COMPLIANCE_LARGE_TRANSFER_BYTES = env.integer("FXFER_COMPLIANCE_LARGE_TRANSFER_BYTES", 10 * 1024**3)
# Rows per admin list page, and how many events one run of the admin's chain check verifies (a request must
# end within API Gateway's 29 s; `manage.py audit_verify` checks the whole chain without that limit).
FXFER_ADMIN_PAGE_SIZE = env.integer("FXFER_ADMIN_PAGE_SIZE", 50)
FXFER_AUDIT_VERIFY_WEB_EVENTS = env.integer("FXFER_AUDIT_VERIFY_WEB_EVENTS", 20000)

# --- Mail --------------------------------------------------------------------------------------------------
# django-ses's backend on the process's one SES client (fxfer.mail); its automatic throttling off: it sleeps
# inside the request, and SES's rate limit is met by the mail outbox's retries.
EMAIL_BACKEND = "fxfer.mail.SESBackend"
AWS_SES_AUTO_THROTTLE = None
DEFAULT_FROM_EMAIL = env.optional("FXFER_FROM_EMAIL", "fxfer@example.com")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Local stand-ins only: `provision` marks the sender verified. In AWS the operator verifies the domain (DNS).
FXFER_SES_VERIFY_SENDER = False
AWS_SES_REGION_NAME = env.optional("FXFER_SES_REGION", FXFER_AWS_REGION)
AWS_SES_REGION_ENDPOINT_URL = FXFER_SES_ENDPOINT or f"https://email.{AWS_SES_REGION_NAME}.amazonaws.com"
# django-ses names this configuration set on every mail (X-SES-CONFIGURATION-SET): SES publishes its bounces
# and complaints to the SNS topic FXFER_SES_NOTIFICATIONS_TOPIC, whose subscriber is
# transfers.notifications.on_ses_notification (zappa_settings.json). `provision` creates both.
# Async Lambda events (the S3 event, the schedules, SNS): FXFER_LAMBDA_FUNCTION is the function Zappa deploys
# for the stage ("fxfer-<stage>"; empty locally, where there is none). `provision` gives its async invocations
# two retries and then the on-failure queue FXFER_FAILED_EVENTS_QUEUE, where a failed event waits 14 days.


def stage_resources(stage: str, *, lambda_function: str = "") -> dict:
    """The names of a stage's SES configuration set, SNS topic, failed-events queue and Lambda function (each
    may be set in the environment). Stage modules call this again once they know their stage."""
    return {
        "AWS_SES_CONFIGURATION_SET": env.optional("FXFER_SES_CONFIGURATION_SET", f"fxfer-{stage}"),
        "FXFER_SES_NOTIFICATIONS_TOPIC": env.optional(
            "FXFER_SES_NOTIFICATIONS_TOPIC", f"fxfer-{stage}-ses-notifications"
        ),
        "FXFER_FAILED_EVENTS_QUEUE": env.optional("FXFER_FAILED_EVENTS_QUEUE", f"fxfer-{stage}-failed-events"),
        "FXFER_LAMBDA_FUNCTION": env.optional("FXFER_LAMBDA_FUNCTION", lambda_function),
    }


globals().update(stage_resources(FXFER_STAGE))

# --- Logging: one JSON object per line, which CloudWatch Logs Insights can query -----------------------------
# Every handler redacts secrets (link tokens, codes, presigned URLs, SAML messages, session keys: fxfer.logs)
# from the message, the extra fields and the traceback, including Django's 4xx/5xx warnings with the request
# path and the runserver access line (django.request and django.server propagate to "django").
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "fxfer.logs.RedactSecrets"}},
    # Powertools' JSON log line (fxfer/observability.py), secrets redacted by the filter and again by it.
    "formatters": {"json": {"()": "fxfer.observability.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["redact"]}},
    "root": {"handlers": ["console"], "level": env.optional("FXFER_LOG_LEVEL", "INFO")},
    "loggers": {
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "botocore": {"level": "WARNING"},
        "pynamodb": {"level": "WARNING"},
    },
}
# How long CloudWatch keeps the function's logs (`provision` sets it on /aws/lambda/<function>).
FXFER_LOG_RETENTION_DAYS = env.integer("FXFER_LOG_RETENTION_DAYS", 90)

# --- Accounts / SAML ---------------------------------------------------------------------------------------
# Employees sign in only through the company IdP (SAML 2.0, SP-initiated). No passwords, no ORM: the user is
# built from DynamoDB by the backend, sessions live in DynamoDB.
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["accounts.backends.SamlUserBackend"]
SESSION_ENGINE = "accounts.sessions"
LOGIN_URL = "/saml/login/"
# Idle timeout (sliding; every request within it extends it) and absolute timeout counted from sign-in.
SESSION_COOKIE_AGE = env.integer("FXFER_SESSION_IDLE_SECONDS", 60 * 60)
FXFER_SESSION_ABSOLUTE_SECONDS = env.integer("FXFER_SESSION_ABSOLUTE_SECONDS", 12 * 60 * 60)
# The server enforces both timeouts; the cookie itself dies with the browser.
SESSION_EXPIRE_AT_BROWSER_CLOSE = True

FXFER_SAML_IDP_ENTITY_ID = env.optional("FXFER_SAML_IDP_ENTITY_ID")
FXFER_SAML_IDP_SSO_URL = env.optional("FXFER_SAML_IDP_SSO_URL")
FXFER_SAML_IDP_SLO_URL = env.optional("FXFER_SAML_IDP_SLO_URL")
# One or more PEM certificates, concatenated: during a rollover both the old and the new one are listed.
FXFER_SAML_IDP_CERTS = env.optional("FXFER_SAML_IDP_CERTS")
FXFER_SAML_SP_KEY = env.optional("FXFER_SAML_SP_KEY")
FXFER_SAML_SP_CERT = env.optional("FXFER_SAML_SP_CERT")
FXFER_SAML_NAMEID_FORMAT = env.optional(
    "FXFER_SAML_NAMEID_FORMAT", "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
)
# How long an AuthnRequest may stay unanswered (the person signs in at the IdP meanwhile).
FXFER_SAML_REQUEST_SECONDS = env.integer("FXFER_SAML_REQUEST_SECONDS", 10 * 60)
# Claim names (the first one present wins), defaults as Entra ID sends them.
_CLAIMS = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims"
FXFER_SAML_ATTRIBUTES = {
    "email": env.listing("FXFER_SAML_ATTRIBUTE_EMAIL", (f"{_CLAIMS}/emailaddress", f"{_CLAIMS}/name", "email")),
    "display_name": env.listing(
        "FXFER_SAML_ATTRIBUTE_DISPLAY_NAME",
        ("http://schemas.microsoft.com/identity/claims/displayname", "displayName"),
    ),
    "department": env.listing("FXFER_SAML_ATTRIBUTE_DEPARTMENT", (f"{_CLAIMS}/department", "department")),
    # The sender's manager's address (supervisor approval): an Entra ID claim mapped from the manager's mail.
    "manager": env.listing("FXFER_SAML_ATTRIBUTE_MANAGER", (f"{_CLAIMS}/manager", "manager")),
    "groups": env.listing(
        "FXFER_SAML_ATTRIBUTE_GROUPS", ("http://schemas.microsoft.com/ws/2008/06/identity/claims/groups", "groups")
    ),
}
# IdP group values (Entra ID sends group object ids by default) that grant each role.
FXFER_ROLE_GROUPS = {
    "employee": env.listing("FXFER_EMPLOYEE_GROUPS"),
    "compliance": env.listing("FXFER_COMPLIANCE_GROUPS"),
}
# Mounts the local SAML IdP under /idp/ (local and test settings only; devtools is never shipped).
FXFER_LOCAL_IDP = False
# Where the local IdP is reached when it is not on fxfer's own address (browser tests put it on another site).
FXFER_LOCAL_IDP_BASE_URL = ""
# The sign-in's binding cookie: SameSite=None (and Secure) so it comes back on an IdP's cross-site POST. Always so
# on https; `make run` against a real IdP on http://localhost turns it on (fxfer/settings/local.py).
FXFER_SAML_BINDING_COOKIE_CROSS_SITE = False
