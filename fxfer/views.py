from django.conf import settings
from django.http import HttpResponsePermanentRedirect, JsonResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from fxfer import dynamo
from transfers import storage


@never_cache
@require_safe
def healthz(request):
    """200 when DynamoDB and S3 answer, 503 naming what failed. Cheap: one GetItem and one HeadBucket."""
    checks = {"dynamodb": dynamo.reachable(), "s3": storage.bucket_reachable()}
    healthy = all(ok for ok, _ in checks.values())
    body = {
        "status": "ok" if healthy else "unavailable",
        "checks": {name: detail for name, (_, detail) in checks.items()},
    }
    return JsonResponse(body, status=200 if healthy else 503)


def home(request):
    """The signed-in person's name and role, or the way to sign in."""
    return render(request, "home.html")


@require_safe
def help_page(request):
    """What a link, a code, expiry and the limits are: for employees and guests alike, so no sign-in."""
    return render(
        request,
        "help.html",
        {
            "code_minutes": settings.FXFER_CODE_SECONDS // 60,
            "code_attempts": settings.FXFER_CODE_ATTEMPTS,
            "default_expiry_days": settings.FXFER_DEFAULT_EXPIRY_DAYS,
            "max_expiry_days": settings.FXFER_MAX_EXPIRY_DAYS,
            "max_file_bytes": settings.FXFER_MAX_FILE_BYTES,
            "max_files": settings.FXFER_MAX_FILES,
            "max_transfer_bytes": settings.FXFER_MAX_TRANSFER_BYTES,
            "max_recipients": settings.FXFER_MAX_RECIPIENTS,
        },
    )


@require_safe
def favicon(request):
    """Browsers (and the admin pages, which do not link it) ask for /favicon.ico: send them to the static icon."""
    return HttpResponsePermanentRedirect(static("favicon.svg"))
