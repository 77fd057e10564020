"""Placeholder values for every variable production settings require, read from production.py itself so the
list never drifts from what the settings demand."""

import datetime
import functools
import re
from pathlib import Path

PRODUCTION_SETTINGS = Path(__file__).resolve().parents[2] / "fxfer" / "settings" / "production.py"


def required_names() -> list[str]:
    """The names passed to env.required(...) in production.py, in order."""
    return re.findall(r'env\.required\(\s*"([A-Z0-9_]+)"', PRODUCTION_SETTINGS.read_text())


@functools.cache
def _key_and_cert() -> tuple[str, str]:
    """A throwaway RSA key and self-signed certificate, for PEM-valued variables."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "placeholder")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


def placeholder(name: str) -> str:
    if "CERT" in name:
        return _key_and_cert()[1]
    if name.endswith("_KEY") and "SAML" in name:
        return _key_and_cert()[0]
    if name.endswith("_URL"):
        return "https://fxfer.example.com" if name == "FXFER_BASE_URL" else "https://idp.example.com/saml2"
    if name.endswith("EMAIL"):
        return "fxfer@example.com"
    if name.endswith("ENTITY_ID"):
        return "https://idp.example.com/entity"
    return f"placeholder-{name.lower().replace('_', '-')}-0123456789abcdefghijklmnopqrstuvwxyz"


def production_env() -> dict[str, str]:
    """{name: placeholder} for every variable production settings require."""
    return {name: placeholder(name) for name in required_names()}
