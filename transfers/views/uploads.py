"""The JSON endpoints the uploader (static/js/send.js, Uppy's AwsS3 callbacks) calls for one file. No file byte
comes here: each answer says where in S3 the browser may put it. Each endpoint serves two uploaders: the sender
of a pending transfer (the transfer in the URL, their SSO session) and a guest of an open upload request (the
request and grant from their guest session; they may touch only files they declared). Refusals are
`{"error": code, "message": ...}` with the service's 4xx status."""

from __future__ import annotations  # annotations naming services' results load no service module

import functools

from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from transfers import policy, services
from transfers.errors import TransferError
from transfers.models import UPLOAD_MULTIPART, UPLOAD_POST
from transfers.views.common import employee_json, guest_upload_scope, json_body, json_error


def _parts_json(parts) -> list[dict]:
    return [{"PartNumber": p.part_number, "Size": p.size, "ETag": p.etag} for p in parts]


def _verified_json(result: services.FileVerified) -> dict:
    return {"outcome": result.outcome, "reason": result.reason, "released": result.released}


def _first_upload_json(f: services.FileCreated) -> dict | None:
    """How a just-declared file goes up, as authorize answers it: a POST policy, or a new multipart upload (no
    part yet, and no part URL: each is signed for its part's CRC). None: the uploader asks authorize."""
    if f.post:
        return {
            "mode": UPLOAD_POST,
            "key": f.key,
            "url": f.post.url,
            "fields": f.post.fields,
            "expiresAt": f.post.expires_at.isoformat(),
        }
    if f.upload_id:
        return {
            "mode": UPLOAD_MULTIPART,
            "key": f.key,
            "uploadId": f.upload_id,
            "partSize": f.part_size,
            "partCount": f.part_count,
            "partsDone": [],
            "partUrls": {},
        }
    return None


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


def declared_json(*, transfer_id: str, url: str, files) -> dict:
    """The answer to "here are my files" (a new transfer, or a guest's files): each file's id and upload plan,
    and a small file's upload itself (`upload`: what its authorize would answer), so it goes up at once."""
    return {
        "transferId": transfer_id,
        "url": url,
        "files": [
            {
                "fileId": f.file_id,
                "name": f.name,
                "size": f.size,
                "mode": f.upload_mode,
                "partSize": policy.part_layout(f.size)[0] if f.upload_mode == UPLOAD_MULTIPART else None,
                "upload": _first_upload_json(f),
            }
            for f in files
        ],
    }


def _part_checksums(value) -> dict[int, str]:
    """{"<part number>": "<CRC-64/NVME, base64>"} from the browser; numbers that are not numbers are dropped
    (the service refuses an empty or out-of-range batch), the checksums are checked by the service."""
    if not isinstance(value, dict):
        return {}
    return {
        int(n): crc for n, crc in value.items() if isinstance(n, str) and n.isascii() and n.isdigit() and len(n) < 6
    }


def _both(endpoint):
    """The endpoint for a sender (`transfer_id` in the URL) and for a request's guest (from the session)."""

    @employee_json
    @functools.wraps(endpoint)
    def for_sender(request, transfer_id: str, file_id: str):
        return endpoint(request, {"owner_id": request.user.id, "transfer_id": transfer_id}, file_id)

    @functools.wraps(endpoint)
    def for_guest(request, file_id: str):
        try:
            return endpoint(request, guest_upload_scope(request), file_id)
        except TransferError as error:
            return json_error(error.code, error.message, error.status, **error.params)

    return never_cache(for_sender), never_cache(for_guest)


@require_POST
def _authorize(request, scope: dict, file_id: str):
    """How to upload this file: POST fields, or the multipart upload (resumed if it exists) and part URLs."""
    return JsonResponse(_authorized_json(services.upload_authorize(**scope, file_id=file_id)))


@require_POST
def _parts_sign(request, scope: dict, file_id: str):
    """URLs for a batch of parts (the uploader asks for about 20 at a time, not one request per part), each
    signed for the part's CRC-64/NVME the browser computed: `{"uploadId": ..., "parts": {"1": crc, ...}}`."""
    body = json_body(request)
    signed = services.upload_parts_sign(
        **scope,
        file_id=file_id,
        upload_id=str(body.get("uploadId") or ""),
        part_checksums=_part_checksums(body.get("parts")),
    )
    return JsonResponse({"partUrls": signed.part_urls, "expiresAt": signed.expires_at.isoformat()})


@require_GET
def _parts_list(request, scope: dict, file_id: str):
    """The parts S3 already holds, so a resumed upload sends only the rest."""
    parts = services.upload_parts_list(**scope, file_id=file_id, upload_id=request.GET.get("uploadId", ""))
    return JsonResponse({"parts": _parts_json(parts)})


@require_POST
def _complete(request, scope: dict, file_id: str):
    """Assemble the parts (the server lists them itself) and verify the object; the body carries the whole
    file's SHA-256 (hex) and CRC-64/NVME (base64), computed by the browser as it read the file."""
    body = json_body(request)
    completed = services.upload_complete_multipart(
        **scope,
        file_id=file_id,
        upload_id=str(body.get("uploadId") or ""),
        sha256=body.get("sha256"),
        crc64nvme=body.get("crc64nvme"),
    )
    return JsonResponse(_verified_json(completed))


@require_POST
def _done(request, scope: dict, file_id: str):
    """The browser says the file is in S3: the same idempotent verification as the S3 event."""
    return JsonResponse(_verified_json(services.upload_done(**scope, file_id=file_id)))


@require_POST
def _cancel(request, scope: dict, file_id: str):
    """The uploader removed the file: abort its upload and drop it."""
    return JsonResponse(_verified_json(services.upload_cancel(**scope, file_id=file_id)))


upload_authorize, guest_upload_authorize = _both(_authorize)
upload_parts_sign, guest_upload_parts_sign = _both(_parts_sign)
upload_parts_list, guest_upload_parts_list = _both(_parts_list)
upload_complete, guest_upload_complete = _both(_complete)
upload_done, guest_upload_done = _both(_done)
upload_cancel, guest_upload_cancel = _both(_cancel)
