"""Settings that point fxfer's SAML SP at the local IdP (local and test settings only; never shipped)."""

import os
from pathlib import Path

from devtools import devkeys
from devtools.idp.identities import COMPLIANCE_GROUP, EMPLOYEES_GROUP


def local_idp_settings(*, base_url: str, keys_dir: Path, label: str) -> dict:
    """The SP's and the local IdP's keys (generated into `keys_dir` when missing) and the IdP's URLs under
    `base_url`; the demo identities' groups look like Entra ID's (group object ids)."""
    devkeys.self_signed(f"fxfer {label} SP", keys_dir, "saml-sp")
    devkeys.self_signed(f"fxfer {label} IdP", keys_dir, "saml-idp")
    return {
        "FXFER_LOCAL_IDP": True,
        "FXFER_LOCAL_IDP_KEY_FILE": str(keys_dir / "saml-idp.key"),
        "FXFER_LOCAL_IDP_CERT_FILE": str(keys_dir / "saml-idp.crt"),
        "FXFER_SAML_SP_KEY": (keys_dir / "saml-sp.key").read_text(),
        "FXFER_SAML_SP_CERT": (keys_dir / "saml-sp.crt").read_text(),
        "FXFER_SAML_IDP_CERTS": (keys_dir / "saml-idp.crt").read_text(),
        "FXFER_SAML_IDP_ENTITY_ID": f"{base_url}/idp/metadata/",
        "FXFER_SAML_IDP_SSO_URL": f"{base_url}/idp/sso/",
        "FXFER_SAML_IDP_SLO_URL": f"{base_url}/idp/slo/",
        "FXFER_ROLE_GROUPS": {"employee": [EMPLOYEES_GROUP], "compliance": [COMPLIANCE_GROUP]},
    }


# What `make run` reads to trust a real IdP instead of the built-in one.
IDP_VARIABLES = ("FXFER_SAML_IDP_ENTITY_ID", "FXFER_SAML_IDP_SSO_URL", "FXFER_SAML_IDP_CERTS")
ROLE_GROUP_VARIABLES = {"employee": "FXFER_EMPLOYEE_GROUPS", "compliance": "FXFER_COMPLIANCE_GROUPS"}


def trusted_idp_from_environment() -> bool:
    """Whether the environment names an IdP to trust (all of IDP_VARIABLES, or an error naming what is missing:
    half a configuration must not quietly fall back to the built-in IdP)."""
    from django.core.exceptions import ImproperlyConfigured

    given = [name for name in IDP_VARIABLES if os.environ.get(name, "").strip()]
    if not given:
        return False
    missing = [name for name in IDP_VARIABLES if name not in given]
    if missing:
        raise ImproperlyConfigured(
            f"To trust your own IdP, set {', '.join(missing)} too (python manage.py saml_idp_metadata <file> "
            "prints them from the IdP's metadata), or unset FXFER_SAML_IDP_* to use the built-in IdP."
        )
    return True
