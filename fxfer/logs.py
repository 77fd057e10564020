"""Structured logs: one JSON object per line, so CloudWatch Logs Insights can filter on fields; and no secret
in any line.

Logs reach people and places the data does not (CloudWatch, support tickets, log exports), so a secret in a log
line is a secret handed out. The secrets this service handles: guest link tokens (in /t/<token>, in the link
cookie), grants and browser bindings (256-bit URL-safe tokens), one-time codes, presigned URLs (their
X-Amz-Signature, credentials and POST policies), SAML messages (SAMLRequest, SAMLResponse, their Signature)
and session keys. `redact` removes them from text; `RedactSecrets` applies it to every record a handler
emits (the message with its arguments, every extra field, the traceback), and `JsonFormatter` applies it
again to what it writes, so a handler configured without the filter still writes no secret. LOGGING puts
the filter on every handler (fxfer/settings/base.py); Django's request and server loggers (4xx/5xx warnings
with the request path, the runserver access line) and Zappa's access log all propagate to those handlers.
"""

import json
import logging
import re
from datetime import UTC, datetime

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# Extra fields are kept when they are plain data (Django's server log passes the socket as "request").
_PLAIN = (str, int, float, bool, type(None), list, dict)

REDACTED = "[redacted]"

# Names whose value is a secret wherever it appears as name=value (a query string, a form body, a cookie
# header) or as a quoted field ("name": "value", 'name': 'value'): presigned URLs and POST policies, SAML
# messages, sessions, CSRF, the SAML browser binding and guest link cookies.
_REDACTED_NAMES = (
    r"X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|AWSAccessKeyId|Signature|Policy"
    r"|SAMLRequest|SAMLResponse|SigAlg|token|grant|session_?key|sessionid|csrftoken|csrfmiddlewaretoken"
    r"|(?:__Host-)?fxfer-[A-Za-z0-9-]+"
)
_RULES = [
    # A guest link: /t/<token>, and anything after it.
    (re.compile(r"(/t/)[^\s?#\"'<>\\]+"), rf"\1{REDACTED}"),
    # name=value in URLs, bodies and cookie headers.
    (re.compile(rf"(?i)(?<![A-Za-z0-9_-])({_REDACTED_NAMES})=[^&;\s\"'<>\\]*"), rf"\1={REDACTED}"),
    # "name": "value" in JSON or a dict's repr.
    (re.compile(rf"""(?i)(["']({_REDACTED_NAMES})["']\s*:\s*)(["'])(?:(?!\3)[^\\]|\\.)*\3"""), rf"\1\3{REDACTED}\3"),
    # SAML messages as XML, or base64 of XML ("<?xml ", "<samlp:", "<saml2p:", "<saml:").
    (re.compile(r"<\??(?:xml|saml2?p?:|md:|ds:)[\s\S]*"), REDACTED),
    (re.compile(r"(?:PD94bWwg|PHNhbWw)[A-Za-z0-9+/%=]*"), REDACTED),
    # A one-time code: six digits next to the word "code".
    (re.compile(r"(?i)(\bcode\b\W{0,5})\d{6}(?!\d)"), rf"\1{REDACTED}"),
    # A session key (32 letters and digits) next to the word "session".
    (re.compile(r"(?i)(session(?:[\s_-]?(?:key|id))?\W{1,5})[a-z0-9]{32}(?![a-z0-9])"), rf"\1{REDACTED}"),
    # Any other 256-bit URL-safe token standing alone (a link token, a grant, a browser binding).
    (re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])"), REDACTED),
]


def redact(text: str) -> str:
    """`text` with every secret the service handles replaced by "[redacted]"."""
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text


def _redacted(value):
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_redacted(v) for v in value)
    return value


class RedactSecrets(logging.Filter):
    """Rewrites the record itself (before any formatter sees it): its message with the arguments merged in,
    its extra fields and its traceback, each redacted. Idempotent, so several handlers may apply it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep the parts, redacted, rather than lose the line
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = redact(str(message)), None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and not key.startswith("_") and isinstance(value, _PLAIN):
                setattr(record, key, _redacted(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        # Fields passed with logger.info("...", extra={...}) become top-level keys.
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and isinstance(value, _PLAIN):
                entry[key] = _redacted(value)
        if record.exc_info or record.exc_text:
            entry["exception"] = redact(record.exc_text or self.formatException(record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)
