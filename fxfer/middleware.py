"""Response headers every page gets, and the guest pages' referrer policy."""

import functools
import time
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import DisallowedHost

from fxfer import aws, observability


def content_security_policy() -> str:
    return _policy(
        settings.FXFER_BUCKET,
        settings.FXFER_S3_ENDPOINT,
        settings.FXFER_SAML_IDP_SSO_URL,
        settings.FXFER_SAML_IDP_SLO_URL,
        settings.STATIC_URL,
    )


@functools.cache  # per configuration: tests change the settings it depends on
def _policy(bucket: str, s3_endpoint: str, sso_url: str, slo_url: str, static_url: str) -> str:
    """Scripts and styles only from this site and its static origin (production: the CloudFront distribution
    of STATIC_URL; Uppy's widgets set inline styles); uploads and downloads go to the bucket's origin; forms post
    here, and their redirects may lead to the bucket (downloads) or the IdP (sign-out). No framing."""
    s3 = " ".join(aws.s3_browser_origins())
    static = urlsplit(static_url)
    assets = f"'self' {static.scheme}://{static.netloc}" if static.scheme and static.netloc else "'self'"
    idp = " ".join(
        sorted({f"{p.scheme}://{p.netloc}" for p in (urlsplit(u) for u in (sso_url, slo_url)) if p.scheme and p.netloc})
    )
    return "; ".join(
        [
            "default-src 'self'",
            # 'wasm-unsafe-eval': WebAssembly compilation only (the uploader's checksum workers), not JS eval.
            f"script-src {assets} 'wasm-unsafe-eval'",
            # The checksum worker; from a blob: URL that imports it when static files come from another origin.
            "worker-src 'self' blob:",
            f"style-src {assets} 'unsafe-inline'",
            f"img-src {assets} data: blob:",
            f"font-src {assets} data:",
            f"connect-src 'self' {s3}",
            f"form-action 'self' {s3} {idp}".rstrip(),
            "frame-ancestors 'none'",
            "base-uri 'self'",
            "object-src 'none'",
        ]
    )


# A guest's pages: the link (/t/<token>, which only moves the token into a cookie) and everything after it.
GUEST_PATHS = ("/t/", "/guest/")


def _same_origin_form_post(request) -> None:
    """A form posted from a page with `Referrer-Policy: no-referrer` carries `Origin: null` and no Referer
    (Fetch standard: a non-GET request's origin is serialised as null under that policy), which Django's CSRF
    check refuses. The browser itself attests in `Sec-Fetch-Site` (a header no page can set) that the request
    comes from this origin; then it stands for the origin it hides. Cross-site, sandboxed or opaque senders
    say otherwise and stay refused, and the CSRF token is checked as always."""
    meta = request.META
    if meta.get("HTTP_ORIGIN") != "null" or meta.get("HTTP_SEC_FETCH_SITE") != "same-origin":
        return
    try:
        meta["HTTP_ORIGIN"] = f"{request.scheme}://{request.get_host()}"
    except DisallowedHost:
        pass  # the host check refuses the request anyway


class SecurityHeadersMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        _same_origin_form_post(request)
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", content_security_policy())
        if request.path.startswith(GUEST_PATHS):
            # No Referer from a guest's pages at all, not even to this site (whose default is same-origin): the
            # mailed link's own request and every page after it leave nothing of their address anywhere.
            response["Referrer-Policy"] = "no-referrer"
        return response


class RequestLogMiddleware:
    """One structured "request" log line per request (request id, route, method, status, latency, user key or
    hashed guest id, cold start), the request's metrics flushed as EMF, and on Lambda with tracing an X-Ray
    subsegment named by its route (fxfer/observability.py). First in MIDDLEWARE, so latency and status are the
    whole stack's, a response from any middleware included."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        cold = observability.cold_start()
        status = 500  # what the handler makes of an exception that escapes
        try:
            with observability.request_subsegment(request) as subsegment:
                response = self.get_response(request)
                status = response.status_code
                observability.annotate(subsegment, request, status)
            return response
        finally:
            observability.request_line(request, status=status, started=started, cold=cold)
