"""Static files in production: hashed names in their own S3 bucket, read by browsers through CloudFront.

`manage.py collectstatic` (deploy time, the operator's credentials: docs/deploy.md, step 7) uploads every file under
its content-hashed name (Django's ManifestFilesMixin, through django-storages) with a year-long immutable cache
header, and writes the manifest (original name -> hashed name) to FXFER_STATIC_MANIFEST_DIR, a folder of the
checkout that the Lambda package ships. At run time `{% static %}` reads that manifest and prefixes STATIC_URL
(the distribution's origin): no S3 call, no client, and the browser fetches the assets without calling Lambda.

The package build computes the same manifest without AWS (`collect_manifest`): the hashes depend on the files'
bytes only, so it names exactly what collectstatic uploads (tests/fxfer/test_static.py compares the two).
"""

import mimetypes
import re
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.staticfiles.storage import ManifestStaticFilesStorage
from django.core.files.storage import FileSystemStorage
from storages.backends.s3 import S3ManifestStaticStorage

MANIFEST_NAME = "staticfiles.json"
# A hashed name never changes its bytes: browsers and CloudFront keep it for a year without asking again.
HASHED_CACHE_CONTROL = "public, max-age=31536000, immutable"
# The originals collectstatic also uploads under their plain names: no page links them (the manifest is strict),
# and they change with every release, so caches must ask before reusing one.
PLAIN_CACHE_CONTROL = "public, no-cache"
# ManifestFilesMixin.hashed_name: "<root>.<12 hex digits of the content's MD5><ext>".
_HASHED = re.compile(r"\.[0-9a-f]{12}(\.[^./]*)?$")
_TEXT_TYPES = ("text/", "application/javascript", "application/json", "image/svg+xml")


def is_hashed(name: str) -> bool:
    """Whether `name` is a content-hashed name (tests check no original's name looks like one)."""
    return bool(_HASHED.search(name.rsplit("/", 1)[-1]))


def content_type(name: str) -> str:
    """The Content-Type S3 (and so CloudFront) answers with: text in UTF-8, as every file under static/ is."""
    guessed = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return f"{guessed}; charset=utf-8" if guessed.startswith(_TEXT_TYPES) else guessed


def manifest_storage() -> FileSystemStorage:
    return FileSystemStorage(location=str(settings.FXFER_STATIC_MANIFEST_DIR))


class StaticStorage(S3ManifestStaticStorage):
    """The static bucket (FXFER_STATIC_BUCKET) under hashed names; URLs on STATIC_URL's host, never signed; the
    manifest on the local disk (the package), not in the bucket."""

    def __init__(self, **options):
        static_url = urlsplit(settings.STATIC_URL)
        options = {
            "bucket_name": getattr(settings, "FXFER_STATIC_BUCKET", "") or None,
            "region_name": settings.FXFER_AWS_REGION,
            "endpoint_url": settings.FXFER_S3_ENDPOINT or None,
            # url() builds "<protocol>//<custom_domain>/<location>/<name>": STATIC_URL's host and path.
            "custom_domain": static_url.netloc,
            "url_protocol": f"{static_url.scheme}:",
            "location": static_url.path.strip("/"),
            "querystring_auth": False,
            "file_overwrite": True,
            "default_acl": None,
            **options,
        }
        super().__init__(manifest_storage=manifest_storage(), **options)

    def get_object_parameters(self, name: str) -> dict:
        cache = HASHED_CACHE_CONTROL if is_hashed(name) else PLAIN_CACHE_CONTROL
        return {**super().get_object_parameters(name), "CacheControl": cache, "ContentType": content_type(name)}


def collect_manifest(destination: Path) -> dict[str, str]:
    """The manifest collectstatic to S3 writes, computed without AWS: the files are collected under hashed names
    into a scratch folder by Django's ManifestStaticFilesStorage (the same hashing), and only the manifest is
    kept, in `destination`. Returns its paths (original -> hashed)."""
    import json

    from django.contrib.staticfiles.management.commands import collectstatic
    from django.core.management import call_command

    destination.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fxfer-static-") as scratch:
        command = collectstatic.Command()
        command.storage = ManifestStaticFilesStorage(
            location=scratch, manifest_storage=FileSystemStorage(location=str(destination))
        )
        call_command(command, interactive=False, verbosity=0)
    return json.loads((destination / MANIFEST_NAME).read_text())["paths"]
