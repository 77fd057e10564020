"""SAML endpoints: one small view each. The work happens in accounts.services."""

from django.conf import settings
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST, require_safe

from accounts import saml, services
from accounts.errors import SigninError, SignoutError
from fxfer.aws import transient

BACKEND = "accounts.backends.SamlUserBackend"
_BINDING_MAX_AGE = 15 * 60


def _binding_cookie() -> str:
    # __Host-: Secure, path /, no Domain. SameSite=None so it comes along on the IdP's cross-site POST: the ACS
    # refuses a response whose sign-in was started by another browser, or by none (login CSRF). Locally (http)
    # it is Lax: the built-in IdP is on the same site.
    return "__Host-fxfer-saml" if settings.SESSION_COOKIE_SECURE else "fxfer-saml"


def _binding_cookie_flags() -> dict:
    # On http, SameSite=None needs Secure, which browsers accept from http://localhost only (a secure context):
    # `make run` against a real IdP (FXFER_SAML_BINDING_COOKIE_CROSS_SITE) sets both so the cookie comes back on
    # that IdP's cross-site POST. The built-in IdP is on the same site, so Lax is enough there.
    cross_site = settings.SESSION_COOKIE_SECURE or settings.FXFER_SAML_BINDING_COOKIE_CROSS_SITE
    return {"secure": cross_site, "httponly": True, "samesite": "None" if cross_site else "Lax"}


def _client(request) -> services.Client:
    return services.Client(ip=request.META.get("REMOTE_ADDR"), user_agent=request.META.get("HTTP_USER_AGENT"))


@require_safe
def metadata(request):
    xml = saml.saml_settings().get_sp_metadata()
    return HttpResponse(xml, content_type="application/samlmetadata+xml")


@never_cache
@require_GET
def login(request):
    started = services.saml_signin_start(
        request_data=saml.request_data(request, "/saml/login/"), next_path=request.GET.get("next")
    )
    response = redirect(started.redirect_url)
    response.set_cookie(_binding_cookie(), started.browser_binding, max_age=_BINDING_MAX_AGE, **_binding_cookie_flags())
    return response


@csrf_exempt  # the IdP's cross-site POST carries no CSRF token; the signed response and InResponseTo bind it
@never_cache
@require_POST
def acs(request):
    try:
        signed_in = services.saml_signin(
            request_data=saml.request_data(request, saml.ACS_PATH),
            saml_response=request.POST.get("SAMLResponse"),
            relay_state=request.POST.get("RelayState"),
            browser_binding=request.COOKIES.get(_binding_cookie()),
            client=_client(request),
        )
    except SigninError as error:
        auth_logout(request)  # a failed or refused sign-in leaves no session behind
        template = "accounts/not_authorised.html" if error.refused else "accounts/signin_failed.html"
        return render(request, template, {"code": error.code}, status=403 if error.refused else 400)
    except Exception as exc:
        if not transient(exc):
            raise
        return render(request, "accounts/signin_failed.html", {"code": "unavailable"}, status=503)
    # A fresh session for every sign-in: login() keeps the key when the same person signs in again, and the
    # absolute timeout counts from the creation of the session item.
    request.session.flush()
    auth_login(request, signed_in.user, backend=BACKEND)
    request.session["saml"] = signed_in.saml_session
    response = redirect(signed_in.next_path)
    response.delete_cookie(_binding_cookie(), samesite=_binding_cookie_flags()["samesite"])
    return response


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def logout(request):
    if request.method == "POST":
        return _logout_post(request)
    if "SAMLResponse" in request.GET:
        return _logout_finish(request)
    if "SAMLRequest" in request.GET:
        return _logout_from_idp(request)
    if request.user.is_authenticated:
        return render(request, "accounts/signout_confirm.html")
    return render(request, "accounts/signed_out.html")


def _logout_post(request):
    if not request.user.is_authenticated:
        return render(request, "accounts/signed_out.html")
    started = services.saml_signout_start(
        request_data=saml.request_data(request, saml.LOGOUT_PATH),
        user=request.user,
        saml_session=request.session.get("saml"),
        client=_client(request),
    )
    auth_logout(request)  # deletes the session item: the cookie is worthless from here on
    return redirect(started.redirect_url) if started.redirect_url else render(request, "accounts/signed_out.html")


def _logout_finish(request):
    try:
        services.saml_signout_finish(
            request_data=saml.request_data(request, saml.LOGOUT_PATH), saml_response=request.GET["SAMLResponse"]
        )
    except SignoutError as error:
        return render(request, "accounts/signed_out.html", {"idp_error": error.code})
    return render(request, "accounts/signed_out.html")


def _logout_from_idp(request):
    try:
        done = services.saml_idp_logout(
            request_data=saml.request_data(request, saml.LOGOUT_PATH),
            saml_request=request.GET["SAMLRequest"],
            client=_client(request),
        )
    except SignoutError as error:
        return render(request, "accounts/idp_logout_failed.html", {"code": error.code}, status=400)
    except Exception as exc:
        if not transient(exc):
            raise
        return render(request, "accounts/idp_logout_failed.html", {"code": "unavailable"}, status=503)
    if str(request.user.pk) == done.user_id:
        auth_logout(request)  # its item is gone already; this clears the cookie too
    return redirect(done.redirect_url)
