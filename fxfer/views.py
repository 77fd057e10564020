from django.http import JsonResponse
from django.shortcuts import render
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
