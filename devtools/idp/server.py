"""pysaml2's IdP, configured from Django settings, and the signed responses it makes.

The tests use the same functions to build real responses, including ones a broken or hostile IdP would send
(unsigned, another key, SHA-1, a wrong audience or destination, a clock that is off).
"""

import contextlib
import datetime as _datetime
import shutil
import time as _time
from collections.abc import Iterator
from types import SimpleNamespace

from django.conf import settings
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, saml, time_util
from saml2.config import IdPConfig
from saml2.metadata import entity_descriptor
from saml2.saml import NAME_FORMAT_URI, NAMEID_FORMAT_EMAILADDRESS, NAMEID_FORMAT_UNSPECIFIED
from saml2.server import Server
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from accounts import saml as sp_saml
from devtools.idp.identities import DemoIdentity


def base_url() -> str:
    # The IdP lives under fxfer's own origin unless told otherwise (a browser test puts it on another site).
    return settings.FXFER_LOCAL_IDP_BASE_URL or settings.FXFER_BASE_URL


def entity_id() -> str:
    return f"{base_url()}/idp/metadata/"


def sso_url() -> str:
    return f"{base_url()}/idp/sso/"


def slo_url() -> str:
    return f"{base_url()}/idp/slo/"


def idp_server(
    *, key_file: str | None = None, cert_file: str | None = None, other_sp_metadata: tuple[str, ...] = ()
) -> Server:
    """A pysaml2 IdP that knows this fxfer SP from its own metadata (and any other SPs given). Another key pair
    makes a look-alike."""
    config = {
        "entityid": entity_id(),
        "service": {
            "idp": {
                "name": "fxfer local IdP",
                "endpoints": {
                    "single_sign_on_service": [(sso_url(), BINDING_HTTP_REDIRECT)],
                    "single_logout_service": [(slo_url(), BINDING_HTTP_REDIRECT)],
                },
                "name_id_format": [NAMEID_FORMAT_EMAILADDRESS, NAMEID_FORMAT_UNSPECIFIED],
                # fxfer signs its requests; a real IdP with "require signed requests" checks them.
                "want_authn_requests_signed": True,
                "policy": {"default": {"lifetime": {"minutes": 5}, "name_form": NAME_FORMAT_URI}},
            }
        },
        "key_file": key_file or settings.FXFER_LOCAL_IDP_KEY_FILE,
        "cert_file": cert_file or settings.FXFER_LOCAL_IDP_CERT_FILE,
        "xmlsec_binary": shutil.which("xmlsec1"),
        "metadata": {"inline": [sp_saml.saml_settings().get_sp_metadata().decode(), *other_sp_metadata]},
        "allow_unknown_attributes": True,
        "accepted_time_diff": 60,
    }
    idp_config = IdPConfig()
    idp_config.load(config)
    return Server(config=idp_config)


def metadata_xml() -> str:
    return str(entity_descriptor(idp_server().config))


def authn_response(
    server: Server,
    *,
    identity: DemoIdentity,
    in_response_to: str | None,
    destination: str | None = None,
    audience: str | None = None,
    recipient: str | None = None,
    sign_response: bool = True,
    sign_assertion: bool = True,
    sign_alg: str = SIG_RSA_SHA256,
    digest_alg: str = DIGEST_SHA256,
) -> str:
    """A Response (XML) for `identity`; by default signed (response and assertion) with RSA-SHA256. The
    recipient (SubjectConfirmationData) is the destination unless given."""
    extra = {}
    if recipient:
        confirmation = {"method": saml.SCM_BEARER, "subject_confirmation_data": {"recipient": recipient}}
        extra["farg"] = {"assertion": {"subject": {"subject_confirmation": confirmation}}}
    return str(
        server.create_authn_response(
            identity.claims(),
            in_response_to=in_response_to,
            destination=destination or sp_saml.absolute_url(sp_saml.ACS_PATH),
            sp_entity_id=audience or sp_saml.sp_entity_id(),
            name_id=saml.NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=identity.name_id),
            authn={"class_ref": saml.AUTHN_PASSWORD_PROTECTED, "authn_auth": entity_id()},
            sign_response=sign_response,
            sign_assertion=sign_assertion,
            sign_alg=sign_alg,
            digest_alg=digest_alg,
            **extra,
        )
    )


def logout_request_url(
    server: Server,
    *,
    name_id: str,
    destination: str | None = None,
    issuer: str | None = None,
    sign: bool = True,
    sign_alg: str = SIG_RSA_SHA256,
    expire: str | None = None,
    relay_state: str = "",
) -> str:
    """An IdP-initiated LogoutRequest for `name_id`, as the HTTP-Redirect URL to the SP's logout endpoint (the
    signature covers the query, as the binding says). The defaults make a genuine one; the arguments make the
    forgeries a test needs (no signature, another or no issuer (""), another destination, SHA-1, an expiry in the
    past)."""
    _request_id, request = server.create_logout_request(
        destination or sp_saml.absolute_url(sp_saml.LOGOUT_PATH),
        sp_saml.sp_entity_id(),
        name_id=saml.NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=name_id),
        expire=expire,
        sign=False,
    )
    if issuer == "":
        request.issuer = None  # no Issuer element at all
    elif issuer is not None:
        request.issuer.text = issuer
    http_args = server.apply_binding(
        BINDING_HTTP_REDIRECT, str(request), request.destination, relay_state, sign=sign, sigalg=sign_alg
    )
    return dict(http_args["headers"])["Location"]


def acs_post_args(server: Server, authn_request) -> dict:
    """Where and how to answer a parsed AuthnRequest: the ACS from the SP's metadata, not from the request."""
    return server.response_args(authn_request.message, [BINDING_HTTP_POST])


@contextlib.contextmanager
def idp_clock(offset: _datetime.timedelta) -> Iterator[None]:
    """Run pysaml2 with its clock moved by `offset` (an IdP whose clock is wrong, or a response kept for later)."""
    seconds = offset.total_seconds()
    real_time, real_datetime = time_util.time, time_util.datetime

    class ShiftedDatetime(_datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return real_datetime.now(tz) + offset

        @classmethod
        def utcnow(cls):
            return real_datetime.now(_datetime.UTC).replace(tzinfo=None) + offset

    shifted_time = SimpleNamespace(
        **{name: getattr(_time, name) for name in dir(_time) if not name.startswith("__")},
    )
    shifted_time.time = lambda: real_time.time() + seconds
    shifted_time.gmtime = lambda secs=None: real_time.gmtime(real_time.time() + seconds if secs is None else secs)
    time_util.time, time_util.datetime = shifted_time, ShiftedDatetime
    try:
        yield
    finally:
        time_util.time, time_util.datetime = real_time, real_datetime
