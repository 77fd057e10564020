"""Response headers every page gets."""

import functools
from urllib.parse import urlsplit

from django.conf import settings

from fxfer import aws


def content_security_policy() -> str:
    return _policy(
        settings.FXFER_BUCKET,
        settings.FXFER_S3_ENDPOINT,
        settings.FXFER_SAML_IDP_SSO_URL,
        settings.FXFER_SAML_IDP_SLO_URL,
    )


@functools.cache  # per configuration: tests change the settings it depends on
def _policy(bucket: str, s3_endpoint: str, sso_url: str, slo_url: str) -> str:
    """Scripts and styles only from this site (Uppy's widgets set inline styles); uploads and downloads go to
    the bucket's origin; forms post here, and their redirects may lead to the bucket (downloads) or the IdP
    (sign-out). No framing."""
    s3 = " ".join(aws.s3_browser_origins())
    idp = " ".join(
        sorted({f"{p.scheme}://{p.netloc}" for p in (urlsplit(u) for u in (sso_url, slo_url)) if p.scheme and p.netloc})
    )
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data: blob:",
            "font-src 'self' data:",
            f"connect-src 'self' {s3}",
            f"form-action 'self' {s3} {idp}".rstrip(),
            "frame-ancestors 'none'",
            "base-uri 'self'",
            "object-src 'none'",
        ]
    )


class SecurityHeadersMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", content_security_policy())
        return response
