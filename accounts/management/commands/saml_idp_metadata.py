"""Read an IdP's SAML metadata file (as Entra ID exports it: "Federation Metadata XML") and print the
FXFER_SAML_IDP_* values fxfer needs.

    python manage.py saml_idp_metadata fxfer.xml              # KEY="value" lines for an environment file
    python manage.py saml_idp_metadata fxfer.xml --json       # a JSON object for Zappa's remote_env file
"""

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from django.core.management.base import BaseCommand, CommandError
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from accounts.saml import split_certificates


class Command(BaseCommand):
    help = "Print the FXFER_SAML_IDP_* settings for an IdP from its SAML metadata XML file."

    def add_arguments(self, parser):
        parser.add_argument("metadata_file", type=Path)
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="print a JSON object instead of KEY=value lines"
        )

    def handle(self, *args, metadata_file: Path, as_json: bool = False, **options):
        values = idp_values(_read(metadata_file))
        for line in _certificate_notes(values["FXFER_SAML_IDP_CERTS"]):
            self.stderr.write(line)
        if as_json:
            self.stdout.write(json.dumps(values, indent=2))
        else:
            for name, value in values.items():
                self.stdout.write(f'{name}="{value}"')


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise CommandError(f"Cannot read {path}: {exc.strerror}") from None


def idp_values(metadata_xml: str) -> dict[str, str]:
    """FXFER_SAML_IDP_* from IdP metadata: the IDPSSODescriptor's HTTP-Redirect endpoints and every signing
    certificate (Entra ID lists the next one beside the current one before a rollover)."""
    try:
        parsed = OneLogin_Saml2_IdPMetadataParser.parse(metadata_xml)
    except Exception as exc:
        raise CommandError(f"Not SAML metadata: {type(exc).__name__}: {exc}") from None
    idp = parsed.get("idp") or {}
    sso_url = (idp.get("singleSignOnService") or {}).get("url")
    if not idp.get("entityId") or not sso_url:
        raise CommandError("The metadata has no IDPSSODescriptor with an HTTP-Redirect SingleSignOnService.")
    certificates = list((idp.get("x509certMulti") or {}).get("signing") or [])
    if idp.get("x509cert"):
        certificates.append(idp["x509cert"])
    certificates = list(dict.fromkeys(cert.strip() for cert in certificates if cert.strip()))
    if not certificates:
        raise CommandError("The metadata has no signing certificate.")
    return {
        "FXFER_SAML_IDP_ENTITY_ID": idp["entityId"],
        "FXFER_SAML_IDP_SSO_URL": sso_url,
        "FXFER_SAML_IDP_SLO_URL": (idp.get("singleLogoutService") or {}).get("url", ""),
        "FXFER_SAML_IDP_CERTS": "\n".join(OneLogin_Saml2_Utils.format_cert(cert).strip() for cert in certificates),
    }


def _certificate_notes(pem_bundle: str) -> list[str]:
    """One line per certificate (SHA-1 thumbprint as the Entra portal shows it, expiry) to compare by eye."""
    notes = []
    now = datetime.now(UTC)
    for pem in split_certificates(pem_bundle):
        cert = x509.load_pem_x509_certificate(pem.encode())
        thumbprint = hashlib.sha1(cert.public_bytes(Encoding.DER), usedforsecurity=False).hexdigest().upper()
        expires = cert.not_valid_after_utc
        state = "EXPIRED" if expires <= now else f"valid until {expires:%Y-%m-%d}"
        notes.append(f"# signing certificate {thumbprint} ({cert.subject.rfc4514_string()}), {state}")
    return notes
