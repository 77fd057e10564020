"""Generate development secrets and certificates into a folder (default .dev/). Never committed; never used
outside `make run` and the tests. Existing files are kept, so sessions and sign-ins survive a re-run."""

import datetime
import secrets
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


def key_and_certificate(common_name: str, *, days: int = 3650) -> tuple[str, str]:
    """A new RSA-2048 private key (PKCS#8) and a self-signed SHA-256 certificate for it, both PEM text."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


def self_signed(common_name: str, directory: Path, stem: str) -> None:
    """<stem>.key and <stem>.crt in `directory` (valid ten years), unless both exist already."""
    key_path, cert_path = directory / f"{stem}.key", directory / f"{stem}.crt"
    if key_path.exists() and cert_path.exists():
        return
    key_pem, cert_pem = key_and_certificate(common_name)
    key_path.write_text(key_pem)
    key_path.chmod(0o600)
    cert_path.write_text(cert_pem)


def main(directory: Path) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret = directory / "secret_key"
    if not secret.exists():
        secret.write_text(secrets.token_urlsafe(50))
        secret.chmod(0o600)
    self_signed("fxfer local SP", directory, "saml-sp")
    self_signed("fxfer local IdP", directory, "saml-idp")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else ".dev"))
