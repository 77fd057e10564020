"""`manage.py saml_idp_metadata <file>` turns an IdP's metadata (as Entra ID exports it) into fxfer's settings."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.saml import split_certificates
from devtools import devkeys

TENANT = "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"


def _body(pem: str) -> str:
    return "".join(line for line in pem.strip().splitlines() if "CERTIFICATE" not in line)


def _entra_metadata(current: str, next_: str) -> str:
    """Shaped like Entra ID's Federation Metadata XML: signed document, a WS-Fed RoleDescriptor first, then the
    IDPSSODescriptor with the current and the next signing certificate."""
    key = "<KeyDescriptor use=\"signing\"><KeyInfo xmlns=\"http://www.w3.org/2000/09/xmldsig#\"><X509Data>" \
          "<X509Certificate>{}</X509Certificate></X509Data></KeyInfo></KeyDescriptor>"  # fmt: skip
    return f"""<?xml version="1.0" encoding="utf-8"?>
<EntityDescriptor ID="_5b4a3c2d" entityID="https://sts.windows.net/{TENANT}/"
 xmlns="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
 xmlns:fed="http://docs.oasis-open.org/wsfed/federation/200706">
 <Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo>
  <CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
  <SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>
  <Reference URI="#_5b4a3c2d"><DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>
  <DigestValue>AAAA</DigestValue></Reference></SignedInfo><SignatureValue>AAAA</SignatureValue></Signature>
 <RoleDescriptor xsi:type="fed:SecurityTokenServiceType"
  protocolSupportEnumeration="http://docs.oasis-open.org/wsfed/federation/200706">{key.format(_body(current))}
 </RoleDescriptor>
 <IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
  {key.format(_body(current))}
  {key.format(_body(next_))}
  <SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
   Location="https://login.microsoftonline.com/{TENANT}/saml2"/>
  <SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
   Location="https://login.microsoftonline.com/{TENANT}/saml2"/>
  <SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
   Location="https://login.microsoftonline.com/{TENANT}/saml2"/>
 </IDPSSODescriptor>
</EntityDescriptor>"""


@pytest.fixture
def metadata_file(tmp_path):
    devkeys.self_signed("Microsoft Azure Federated SSO Certificate", tmp_path, "current")
    devkeys.self_signed("Microsoft Azure Federated SSO Certificate", tmp_path, "next")
    current, next_ = (tmp_path / "current.crt").read_text(), (tmp_path / "next.crt").read_text()
    path = tmp_path / "fxfer.xml"
    path.write_text(_entra_metadata(current, next_))
    return path, current, next_


def test_prints_the_idp_settings_with_every_signing_certificate(metadata_file):
    path, _, _ = metadata_file
    out, err = StringIO(), StringIO()
    call_command("saml_idp_metadata", str(path), stdout=out, stderr=err)
    lines = out.getvalue()
    assert f'FXFER_SAML_IDP_ENTITY_ID="https://sts.windows.net/{TENANT}/"' in lines
    assert f'FXFER_SAML_IDP_SSO_URL="https://login.microsoftonline.com/{TENANT}/saml2"' in lines
    assert f'FXFER_SAML_IDP_SLO_URL="https://login.microsoftonline.com/{TENANT}/saml2"' in lines
    assert err.getvalue().count("# signing certificate") == 2


def test_json_output_feeds_the_settings_directly(metadata_file):
    path, current, next_ = metadata_file
    out = StringIO()
    call_command("saml_idp_metadata", str(path), "--json", stdout=out, stderr=StringIO())
    values = json.loads(out.getvalue())
    certs = split_certificates(values["FXFER_SAML_IDP_CERTS"])
    assert [_body(cert) for cert in certs] == [_body(current), _body(next_)]


def test_a_file_that_is_not_idp_metadata_is_refused_with_a_clear_message(tmp_path):
    path = tmp_path / "not-metadata.xml"
    path.write_text("<html><body>Sign in</body></html>")
    with pytest.raises(CommandError, match=r"IDPSSODescriptor|Not SAML metadata"):
        call_command("saml_idp_metadata", str(path), stdout=StringIO(), stderr=StringIO())
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("saml_idp_metadata", str(tmp_path / "missing.xml"), stdout=StringIO(), stderr=StringIO())
