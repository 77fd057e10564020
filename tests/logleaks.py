"""No log line the test suite writes may hold a secret (a pytest plugin, loaded by tests/conftest.py).

Every record that reaches the root logger, or a logger that does not propagate (Django's), is formatted the
way production writes it: through the configured console handler's own filters and formatter (LOGGING in
fxfer/settings/base.py). Each line is then searched for
- every secret the suite produced, by value: link tokens, grants and browser bindings (every
  `secrets.token_urlsafe` of 256 bits, every `transfers.outbox.link_token`), one-time codes
  (`transfers.outbox.one_time_code`) and session keys (`SessionBase._get_new_session_key`);
- the shapes of the secrets that are not generated here: a token after /t/, a presigned URL's signature or a
  POST policy, a SAML message (SAMLRequest/SAMLResponse, its XML or the XML's base64), six digits next to
  "code".
A test whose run wrote such a line fails in its teardown report, naming the line (under xdist too: each worker
checks its own tests). tests/fxfer/test_logs.py proves the check catches a leak.
"""

import functools
import logging
import re
import secrets
import sys

import pytest

_SHAPES = [
    ("a link token in a path", re.compile(r"/t/[A-Za-z0-9_-]{43}")),
    ("a presigned URL signature", re.compile(r"(?i)(?:X-Amz-Signature|[?&]Signature)=[0-9A-Za-z%+/]{8}")),
    ("a POST policy signature", re.compile(r"(?i)x-amz-signature[\"']?\s*:\s*[\"'][0-9a-f]{8}")),
    ("a POST policy", re.compile(r"(?i)policy[\"']?\s*:\s*[\"']eyJ")),
    ("a SAML message", re.compile(r"(?i)SAML(?:Request|Response)[\"']?\s*[=:]\s*[\"']?[A-Za-z0-9+/%]{8}")),
    ("SAML XML", re.compile(r"PHNhbWw|PD94bWwg|<saml2?p?:(?:Response|AuthnRequest|LogoutRequest|Assertion)")),
    ("a one-time code", re.compile(r"(?i)\bcode\b\W{0,5}\d{6}(?!\d)")),
]
_WORD = re.compile(r"[A-Za-z0-9_-]{32,}")
# Six digits standing alone: a run inside a hex id or a hash (letters around it) is not a code, by chance alike.
_DIGITS = re.compile(r"(?<![0-9A-Za-z])\d{6}(?![0-9A-Za-z])")


class Secrets:
    """What the suite produced that must never be logged (values, so a leak in any form or place shows)."""

    def __init__(self) -> None:
        self.values: set[str] = set()  # tokens, grants, bindings, session keys
        self.codes: set[str] = set()

    def leaks(self, line: str) -> list[str]:
        """What in `line` is a secret, described (empty when the line is clean)."""
        found = [f"{what}: {m[0]}" for what, pattern in _SHAPES for m in [pattern.search(line)] if m]
        # By the words of the line, not by every secret: the suite makes tens of thousands of them.
        for word in _WORD.findall(line):
            pieces = {word[i : i + n] for n in (32, 43) for i in range(len(word) - n + 1)}
            found += [f"a secret value: {v}" for v in sorted(pieces & self.values)]
        found += [f"a one-time code: {c}" for c in sorted(set(_DIGITS.findall(line)) & self.codes)]
        return found


SECRETS = Secrets()


def leaks(lines) -> list[str]:
    """Each line that holds a secret, with what it holds."""
    return [f"{line}\n    -> {', '.join(found)}" for line in lines if (found := SECRETS.leaks(line))]


class Capture(logging.Handler):
    """Keeps every line as the console handler would write it."""

    def __init__(self) -> None:
        super().__init__(level=logging.NOTSET)
        self.lines: list[str] = []

    def attach(self) -> None:
        """On the root logger and every logger that does not propagate, with the console handler's filters and
        formatter. Idempotent; again before each test, since a test may reconfigure logging."""
        console = next((h for h in logging.getLogger().handlers if h.get_name() == "console"), None)
        if console is not None:
            self.filters = list(console.filters)
            self.formatter = console.formatter
        loggers = [logging.getLogger()] + [
            logger
            for logger in logging.Logger.manager.loggerDict.values()
            if isinstance(logger, logging.Logger) and not logger.propagate and logger.handlers
        ]
        for logger in loggers:
            if self not in logger.handlers:
                logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # a line that cannot be formatted is written by no handler either
            self.handleError(record)

    def take(self) -> list[str]:
        lines, self.lines = self.lines, []
        return lines


CAPTURE = Capture()


def _observing(original, record):
    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        value = original(*args, **kwargs)
        record(value, *args, **kwargs)
        return value

    wrapper.__wrapped_by_logleaks__ = True
    return wrapper


def _observe(module, name: str, record) -> None:
    """Replace `module.name` with a wrapper that records its results, in every module that imported it."""
    original = getattr(module, name)
    if getattr(original, "__wrapped_by_logleaks__", False):
        return
    wrapper = _observing(original, record)
    for loaded in list(sys.modules.values()):
        if getattr(loaded, name, None) is original:
            setattr(loaded, name, wrapper)


def _token(value, nbytes=None, *args, **kwargs):
    if nbytes is None or nbytes >= 32:
        SECRETS.values.add(value)


def pytest_configure(config):
    from django.contrib.sessions.backends.base import SessionBase

    from transfers import outbox

    _observe(secrets, "token_urlsafe", _token)
    _observe(outbox, "link_token", lambda value, *a, **k: SECRETS.values.add(value))
    _observe(outbox, "one_time_code", lambda value, *a, **k: SECRETS.codes.add(value))
    original = SessionBase._get_new_session_key
    if not getattr(original, "__wrapped_by_logleaks__", False):
        SessionBase._get_new_session_key = _observing(original, lambda value, *a, **k: SECRETS.values.add(value))
    CAPTURE.attach()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    CAPTURE.attach()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """After a test's teardown (its fixtures', and the session's after the last test), every line written since
    the previous test's check; a secret in any of them fails this test."""
    outcome = yield
    if call.when != "teardown":
        return
    found = leaks(CAPTURE.take())
    report = outcome.get_result()
    if found and report.outcome != "failed":
        report.outcome = "failed"
        report.longrepr = "A log line holds a secret:\n" + "\n".join(found)
