"""Placeholder values for every variable production settings require, read from production.py itself so the
list never drifts. Used to build the package (collectstatic under production settings), to run it locally, and
by the tests of the production settings. Never part of the package."""

import functools
import re
import secrets
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION_SETTINGS = ROOT / "fxfer" / "settings" / "production.py"
STAGE = "dev"


def required_production_names() -> list[str]:
    """The names production.py passes to env.required(...), read from the file so the list never drifts."""
    return re.findall(r'env\.required(?:_listing)?\(\s*"([A-Z0-9_]+)"', PRODUCTION_SETTINGS.read_text())


def secret_production_names() -> list[str]:
    """The names production.py reads with env.secret(...): SSM parameters on Lambda (fxfer/env.py)."""
    return re.findall(r'env\.secret\(\s*"([A-Z0-9_]+)"', PRODUCTION_SETTINGS.read_text())


@functools.cache
def _placeholder_key_and_cert() -> tuple[str, str]:
    """A throwaway RSA key and a self-signed certificate for it (PEM), for PEM-valued variables."""
    from devtools.devkeys import key_and_certificate

    return key_and_certificate("fxfer placeholder", days=30)


def _placeholder(name: str) -> str:
    if "CERT" in name:
        return _placeholder_key_and_cert()[1]
    if "PRIVATE_KEY" in name or (name.endswith("_KEY") and "SAML" in name):
        return _placeholder_key_and_cert()[0]
    if name == "FXFER_BASE_URL":
        return "https://fxfer.example.com"
    if name == "FXFER_STAGE":
        return STAGE
    if name.endswith("_URL"):
        return "https://idp.example.com/saml2/sso"
    if name.endswith("EMAIL"):
        return "fxfer@example.com"
    if name.endswith("ENTITY_ID"):
        return "https://idp.example.com/saml2/metadata"
    return secrets.token_urlsafe(50)


def placeholder_production_env() -> dict[str, str]:
    """{name: placeholder} for every variable production settings require and every secret they read (PEMs are
    real, throwaway ones)."""
    return {name: _placeholder(name) for name in [*required_production_names(), *secret_production_names()]}
