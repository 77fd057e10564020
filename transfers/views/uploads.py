"""The JSON endpoints the uploader (static/js/send.js, Uppy's AwsS3 callbacks) calls for one file of the
owner's pending transfer. No file byte comes here: each answer says where in S3 the browser may put it.
Refusals are `{"error": code, "message": ...}` with the service's 4xx status."""

from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from transfers import services
from transfers.views.common import employee_json, json_body


def _parts_json(parts) -> list[dict]:
    return [{"PartNumber": p.part_number, "Size": p.size, "ETag": p.etag} for p in parts]


def _verified_json(result: services.FileVerified) -> dict:
    return {"outcome": result.outcome, "reason": result.reason, "released": result.released}


def _authorized_json(found: services.UploadAuthorized) -> dict:
    return {
        "mode": found.mode,
        "key": found.key,
        "url": found.url,
        "fields": found.fields,
        "uploadId": found.upload_id,
        "partSize": found.part_size,
        "partCount": found.part_count,
        "partsDone": _parts_json(found.parts_done),
        "partUrls": found.part_urls,
        "expiresAt": found.expires_at.isoformat(),
    }


def _int_list(value) -> list[int]:
    return [n for n in value if isinstance(n, int) and not isinstance(n, bool)] if isinstance(value, list) else []


@never_cache
@require_POST
@employee_json
def upload_authorize(request, transfer_id: str, file_id: str):
    """How to upload this file: POST fields, or the multipart upload (resumed if it exists) and part URLs."""
    found = services.upload_authorize(owner_id=request.user.id, transfer_id=transfer_id, file_id=file_id)
    return JsonResponse(_authorized_json(found))


@never_cache
@require_POST
@employee_json
def upload_parts_sign(request, transfer_id: str, file_id: str):
    """URLs for a batch of parts (the uploader asks for about 20 at a time, not one request per part)."""
    body = json_body(request)
    signed = services.upload_parts_sign(
        owner_id=request.user.id,
        transfer_id=transfer_id,
        file_id=file_id,
        upload_id=str(body.get("uploadId") or ""),
        part_numbers=_int_list(body.get("partNumbers")),
    )
    return JsonResponse({"partUrls": signed.part_urls, "expiresAt": signed.expires_at.isoformat()})


@never_cache
@require_GET
@employee_json
def upload_parts_list(request, transfer_id: str, file_id: str):
    """The parts S3 already holds, so a resumed upload sends only the rest."""
    parts = services.upload_parts_list(
        owner_id=request.user.id, transfer_id=transfer_id, file_id=file_id, upload_id=request.GET.get("uploadId", "")
    )
    return JsonResponse({"parts": _parts_json(parts)})


@never_cache
@require_POST
@employee_json
def upload_complete(request, transfer_id: str, file_id: str):
    """Assemble the parts (the server lists them itself) and verify the object."""
    result = services.upload_complete_multipart(
        owner_id=request.user.id,
        transfer_id=transfer_id,
        file_id=file_id,
        upload_id=str(json_body(request).get("uploadId") or ""),
    )
    return JsonResponse(_verified_json(result))


@never_cache
@require_POST
@employee_json
def upload_done(request, transfer_id: str, file_id: str):
    """The browser says the file is in S3: the same idempotent verification as the S3 event."""
    result = services.upload_done(owner_id=request.user.id, transfer_id=transfer_id, file_id=file_id)
    return JsonResponse(_verified_json(result))


@never_cache
@require_POST
@employee_json
def upload_cancel(request, transfer_id: str, file_id: str):
    """The sender removed the file: abort its upload and drop it from the transfer."""
    result = services.upload_cancel(owner_id=request.user.id, transfer_id=transfer_id, file_id=file_id)
    return JsonResponse(_verified_json(result))
