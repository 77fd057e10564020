"""The local IdP's pages: pick a demo identity, answer the SP with a signed Response; answer logout."""

from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect
from django.template import Engine, RequestContext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_safe
from saml2 import BINDING_HTTP_REDIRECT
from saml2.xmldsig import SIG_RSA_SHA256

from devtools.idp import server as idp
from devtools.idp.identities import DEMO_IDENTITIES

# Its own template engine: these templates live beside the code, outside the shipped templates folder.
_engine = Engine(
    dirs=[str(Path(__file__).parent / "templates"), str(settings.BASE_DIR / "templates")],
    context_processors=[
        "django.template.context_processors.csrf",
        "django.template.context_processors.request",
        "django.template.context_processors.i18n",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ],
    libraries={"i18n": "django.templatetags.i18n", "static": "django.templatetags.static"},
)


def _render(request, template: str, context: dict, status: int = 200) -> HttpResponse:
    return HttpResponse(_engine.get_template(template).render(RequestContext(request, context)), status=status)


@require_safe
def metadata(request):
    return HttpResponse(idp.metadata_xml(), content_type="application/samlmetadata+xml")


def _authn_request(server, params):
    """The AuthnRequest from the SP, its redirect-binding signature checked against the SP's metadata."""
    return server.parse_authn_request(
        params.get("SAMLRequest", ""),
        BINDING_HTTP_REDIRECT,
        relay_state=params.get("RelayState"),
        sigalg=params.get("SigAlg"),
        signature=params.get("Signature"),
    )


@never_cache
@require_http_methods(["GET", "POST"])
def sso(request):
    server = idp.idp_server()
    params = request.POST if request.method == "POST" else request.GET
    try:
        authn_request = _authn_request(server, params)
    except Exception as exc:
        return HttpResponseBadRequest(f"Not a valid AuthnRequest from a known SP: {type(exc).__name__}: {exc}")
    if request.method == "GET" or params.get("identity") not in DEMO_IDENTITIES:
        keep = {name: params[name] for name in ("SAMLRequest", "RelayState", "SigAlg", "Signature") if name in params}
        return _render(request, "idp/choose.html", {"identities": DEMO_IDENTITIES.values(), "keep": keep})
    answer = idp.acs_post_args(server, authn_request)
    xml = idp.authn_response(
        server,
        identity=DEMO_IDENTITIES[params["identity"]],
        in_response_to=answer["in_response_to"],
        destination=answer["destination"],
        audience=answer["sp_entity_id"],
    )
    response = _render(
        request,
        "idp/post.html",
        {"action": answer["destination"], "saml_response": _b64(xml), "relay_state": params.get("RelayState", "")},
    )
    # This page is the IdP's, not fxfer's: its form posts to the SP's ACS, which may be on another site (a browser
    # test puts the IdP on one), so it gets its own policy instead of fxfer's form-action 'self'.
    acs = urlsplit(answer["destination"])
    response["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        f"form-action 'self' {acs.scheme}://{acs.netloc}; frame-ancestors 'none'; base-uri 'self'; object-src 'none'"
    )
    return response


@never_cache
@require_http_methods(["GET", "POST"])
def logout_everywhere(request):
    """ "Sign out of every app": the IdP starts a logout at fxfer (a signed LogoutRequest for the person), and
    fxfer answers at /idp/slo/ with a LogoutResponse."""
    if request.method == "GET" or request.POST.get("identity") not in DEMO_IDENTITIES:
        return _render(request, "idp/logout.html", {"identities": DEMO_IDENTITIES.values()})
    identity = DEMO_IDENTITIES[request.POST["identity"]]
    return redirect(idp.logout_request_url(idp.idp_server(), name_id=identity.name_id))


@never_cache
@require_safe
def slo(request):
    server = idp.idp_server()
    if "SAMLResponse" in request.GET:
        return _slo_answered(server, request)
    try:
        logout_request = server.parse_logout_request(
            request.GET.get("SAMLRequest", ""),
            BINDING_HTTP_REDIRECT,
            relay_state=request.GET.get("RelayState"),
            sigalg=request.GET.get("SigAlg"),
            signature=request.GET.get("Signature"),
        )
    except Exception as exc:
        return HttpResponseBadRequest(f"Not a valid LogoutRequest from a known SP: {type(exc).__name__}: {exc}")
    answer = server.create_logout_response(logout_request.message, [BINDING_HTTP_REDIRECT])
    destination = server.response_args(logout_request.message, [BINDING_HTTP_REDIRECT])["destination"]
    http_args = server.apply_binding(
        BINDING_HTTP_REDIRECT,
        str(answer),
        destination,
        request.GET.get("RelayState", ""),
        response=True,
        sign=True,
        sigalg=SIG_RSA_SHA256,
    )
    return redirect(dict(http_args["headers"])["Location"])


def _slo_answered(server, request):
    """fxfer's answer to a logout this IdP started, its redirect-binding signature checked with fxfer's
    certificate (as a real IdP checks it against the SP's metadata)."""
    if not _sp_signed_query(request.META.get("QUERY_STRING", "")):
        return HttpResponseBadRequest("The LogoutResponse is not signed by fxfer.")
    try:
        answer = server.parse_logout_request_response(request.GET["SAMLResponse"], BINDING_HTTP_REDIRECT)
        status = answer.response.status.status_code.value
    except Exception as exc:
        return HttpResponseBadRequest(f"Not a valid LogoutResponse from a known SP: {type(exc).__name__}: {exc}")
    return _render(request, "idp/logged_out.html", {"success": status.endswith(":Success"), "status": status})


def _sp_signed_query(query_string: str) -> bool:
    from urllib.parse import unquote

    from onelogin.saml2.utils import OneLogin_Saml2_Utils

    raw = dict(part.split("=", 1) for part in query_string.split("&") if "=" in part)
    if "Signature" not in raw or "SigAlg" not in raw:
        return False
    # The signed octets are the parameters exactly as sent, in the binding's order.
    names = [name for name in ("SAMLResponse", "RelayState", "SigAlg") if name in raw]
    signed = "&".join(f"{name}={raw[name]}" for name in names)
    return OneLogin_Saml2_Utils.validate_binary_sign(
        signed,
        OneLogin_Saml2_Utils.b64decode(unquote(raw["Signature"])),
        settings.FXFER_SAML_SP_CERT,
        unquote(raw["SigAlg"]),
    )


def _b64(xml: str) -> str:
    import base64

    return base64.b64encode(xml.encode()).decode()
