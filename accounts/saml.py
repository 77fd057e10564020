"""python3-saml, configured strictly from Django settings.

Every URL the SP checks a response against (ACS, audience, destination, recipient) comes from FXFER_BASE_URL.
The request's Host header never enters: a forged Host cannot make a response meant for another site pass.
"""

import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from django.conf import settings

# python3-saml (with lxml and xmlsec) is imported by the functions that use it: a cold start that serves no SAML
# request (most of them) does not load it (~25 ms).
if TYPE_CHECKING:
    from onelogin.saml2.settings import OneLogin_Saml2_Settings

METADATA_PATH = "/saml/metadata/"
ACS_PATH = "/saml/acs/"
LOGOUT_PATH = "/saml/logout/"

_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


def absolute_url(path: str) -> str:
    return f"{settings.FXFER_BASE_URL}{path}"


def sp_entity_id() -> str:
    return absolute_url(METADATA_PATH)


def split_certificates(pem: str) -> list[str]:
    """Every PEM certificate in `pem` (several during a rollover); a bare base64 body counts as one."""
    pem = str(pem or "")  # production's is a lazy string, read from SSM on first use (fxfer.env.secret)
    found = _PEM_CERT.findall(pem)
    if found:
        return found
    body = pem.strip()
    return [body] if body else []


def saml_settings_dict() -> dict:
    from onelogin.saml2.constants import OneLogin_Saml2_Constants as C

    idp = {
        "entityId": settings.FXFER_SAML_IDP_ENTITY_ID,
        "singleSignOnService": {"url": settings.FXFER_SAML_IDP_SSO_URL, "binding": C.BINDING_HTTP_REDIRECT},
        "x509certMulti": {"signing": split_certificates(settings.FXFER_SAML_IDP_CERTS)},
    }
    if settings.FXFER_SAML_IDP_SLO_URL:
        idp["singleLogoutService"] = {"url": settings.FXFER_SAML_IDP_SLO_URL, "binding": C.BINDING_HTTP_REDIRECT}
    return {
        "strict": True,
        "debug": False,
        "sp": {
            "entityId": sp_entity_id(),
            "assertionConsumerService": {"url": absolute_url(ACS_PATH), "binding": C.BINDING_HTTP_POST},
            "singleLogoutService": {"url": absolute_url(LOGOUT_PATH), "binding": C.BINDING_HTTP_REDIRECT},
            "NameIDFormat": settings.FXFER_SAML_NAMEID_FORMAT,
            "x509cert": str(settings.FXFER_SAML_SP_CERT),
            "privateKey": str(settings.FXFER_SAML_SP_KEY),
        },
        "idp": idp,
        "security": {
            "authnRequestsSigned": True,
            "logoutRequestSigned": True,
            "logoutResponseSigned": True,
            "signMetadata": False,
            "wantMessagesSigned": True,
            "wantAssertionsSigned": True,
            "wantAssertionsEncrypted": False,
            "wantNameId": True,
            "wantNameIdEncrypted": False,
            "wantAttributeStatement": False,
            "requestedAuthnContext": False,
            "rejectUnsolicitedResponsesWithInResponseTo": True,
            "rejectDeprecatedAlgorithm": True,
            "signatureAlgorithm": C.RSA_SHA256,
            "digestAlgorithm": C.SHA256,
            "allowRepeatAttributeName": True,
            "allowSingleLabelDomains": True,
        },
    }


def saml_settings() -> "OneLogin_Saml2_Settings":
    from onelogin.saml2.settings import OneLogin_Saml2_Settings

    return OneLogin_Saml2_Settings(saml_settings_dict(), sp_validation_only=False)


def request_data(request, path: str) -> dict:
    """python3-saml's view of the request, with scheme, host and path taken from FXFER_BASE_URL."""
    base = urlsplit(settings.FXFER_BASE_URL)
    return {
        "https": "on" if base.scheme == "https" else "off",
        "http_host": base.netloc,
        "script_name": f"{base.path.rstrip('/')}{path}",
        "get_data": request.GET.copy(),
        "post_data": request.POST.copy(),
        # Signature checks on the redirect binding must use the query exactly as the IdP encoded it.
        "query_string": request.META.get("QUERY_STRING", ""),
        "validate_signature_from_qs": True,
    }
