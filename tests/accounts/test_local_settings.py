"""`make run` (fxfer.settings.local, devtools/run.py): the built-in IdP unless the environment names a real one;
then that IdP and those groups are trusted, the built-in IdP is off, and the banner says so. Each case imports the
settings in a fresh process, under its own environment, as `make run` does."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENTRA = "https://sts.windows.net/00000000-1111-2222-3333-444444444444/"
CERT = "-----BEGIN CERTIFICATE-----\nMIIBroken\n-----END CERTIFICATE-----"

_PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.urls import Resolver404, resolve
from devtools.run import signin_banner
from transfers.services.missend import needs_confirming
try:
    resolve("/idp/sso/")
    builtin_mounted = True
except Resolver404:
    builtin_mounted = False
print(json.dumps({
    "entity_id": settings.FXFER_SAML_IDP_ENTITY_ID,
    "sso_url": settings.FXFER_SAML_IDP_SSO_URL,
    "certs": settings.FXFER_SAML_IDP_CERTS,
    "groups": settings.FXFER_ROLE_GROUPS,
    "local_idp": settings.FXFER_LOCAL_IDP,
    "builtin_mounted": builtin_mounted,
    "cross_site_binding": settings.FXFER_SAML_BINDING_COOKIE_CROSS_SITE,
    "sp_cert": bool(settings.FXFER_SAML_SP_CERT),
    "banner": signin_banner(settings),
    "to_confirm": needs_confirming(["carol@example.com", "bob@partner.example"]),
}))
"""


def _local_settings(**variables) -> subprocess.CompletedProcess:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("FXFER_SAML_", "FXFER_EMPLOYEE_", "FXFER_COMPLIANCE_", "DJANGO_"))
    }
    env |= {"DJANGO_SETTINGS_MODULE": "fxfer.settings.local", "FXFER_BASE_URL": "http://localhost:8000"}
    env |= variables
    return subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _settings(**variables) -> dict:
    done = _local_settings(**variables)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


REAL_IDP = {
    "FXFER_SAML_IDP_ENTITY_ID": ENTRA,
    "FXFER_SAML_IDP_SSO_URL": "https://login.microsoftonline.com/tenant/saml2",
    "FXFER_SAML_IDP_CERTS": CERT,
    "FXFER_EMPLOYEE_GROUPS": "emp-1,emp-2",
    "FXFER_COMPLIANCE_GROUPS": "comp-1",
}


def test_without_idp_variables_the_built_in_idp_is_trusted_and_the_banner_says_it_is_not_real():
    found = _settings()
    assert found["entity_id"] == "http://localhost:8000/idp/metadata/"
    assert found["local_idp"] and found["builtin_mounted"] and not found["cross_site_binding"]
    assert "the BUILT-IN IdP at http://localhost:8000/idp/sso/ (demo people; not a real IdP)" in found["banner"]
    # The demo company is example.com: before a send, only the outside address is asked about.
    assert found["to_confirm"] == ["bob@partner.example"]


def test_a_real_idp_from_the_environment_is_trusted_with_its_groups_and_the_built_in_one_is_off():
    found = _settings(**REAL_IDP)
    assert (found["entity_id"], found["sso_url"], found["certs"]) == (
        ENTRA,
        "https://login.microsoftonline.com/tenant/saml2",
        CERT,
    )
    assert found["groups"] == {"employee": ["emp-1", "emp-2"], "compliance": ["comp-1"]}
    assert not found["local_idp"] and not found["builtin_mounted"]
    assert found["cross_site_binding"] and found["sp_cert"]
    assert f"trusts YOUR IdP {ENTRA}" in found["banner"]
    assert "The built-in IdP is OFF: nothing it signs is trusted." in found["banner"]
    assert "employee: emp-1, emp-2; compliance: comp-1" in found["banner"]


def test_groups_from_the_environment_win_with_the_built_in_idp_too():
    found = _settings(FXFER_EMPLOYEE_GROUPS="my-employees")
    assert found["groups"]["employee"] == ["my-employees"]
    assert found["groups"]["compliance"] == ["9b2f6c4d-8e1a-4c7b-b3d2-6a5f4e3d2c1b"]  # the built-in demo group
    assert found["local_idp"]


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            {"FXFER_SAML_IDP_ENTITY_ID": ENTRA},
            "set FXFER_SAML_IDP_SSO_URL, FXFER_SAML_IDP_CERTS too",
        ),
        (
            {k: v for k, v in REAL_IDP.items() if "GROUPS" not in k},
            "set FXFER_EMPLOYEE_GROUPS and/or FXFER_COMPLIANCE_GROUPS",
        ),
    ],
)
def test_half_a_real_idp_configuration_stops_with_what_is_missing(variables, message):
    done = _local_settings(**variables)
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr and message in done.stderr
