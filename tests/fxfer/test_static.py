"""Static files off Lambda (issue 15, item 7): collectstatic uploads hashed names to the static bucket with a
year-long immutable cache header and the right Content-Type; a page rendered with production's storage links the
static origin under hashed names from the manifest on disk, without any S3 call; the Content-Security-Policy admits
that origin and nothing broader; locally (`make run`) /static/ is still served by the app."""

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from django.core.management import call_command
from django.test import Client

from fxfer import static
from tests.faults import ERROR, LOST, PERSISTENT, inject, recording

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "https://d111111abcdef8.cloudfront.net"
STATIC_BUCKET = "fxfer-test-static"
WHITENOISE = "whitenoise.middleware.WhiteNoiseMiddleware"


@pytest.fixture
def production_static(settings, tmp_path):
    """The static-file settings of fxfer/settings/production.py, the manifest in a folder of this test, the
    stage's static bucket in moto."""
    settings.STATIC_URL = f"{ORIGIN}/"
    settings.FXFER_STATIC_BUCKET = STATIC_BUCKET
    settings.FXFER_STATIC_MANIFEST_DIR = tmp_path / "manifest"
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": "fxfer.static.StaticStorage"}}
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != WHITENOISE]
    _s3().create_bucket(Bucket=STATIC_BUCKET, CreateBucketConfiguration={"LocationConstraint": _region(settings)})
    return settings


def _region(settings) -> str:
    return settings.FXFER_AWS_REGION


def _s3():
    from django.conf import settings

    return boto3.client("s3", region_name=_region(settings))


def _objects() -> dict[str, dict]:
    s3 = _s3()
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=STATIC_BUCKET)
        for o in page.get("Contents", [])
    ]
    return {key: s3.head_object(Bucket=STATIC_BUCKET, Key=key) for key in keys}


def _manifest(settings) -> dict[str, str]:
    return json.loads((settings.FXFER_STATIC_MANIFEST_DIR / static.MANIFEST_NAME).read_text())["paths"]


def _collectstatic(*, admin: bool = True) -> None:
    """collectstatic as the deploy runs it; without Django admin's 100-odd files where a test needs a few."""
    call_command("collectstatic", interactive=False, verbosity=0, ignore_patterns=[] if admin else ["admin"])


def test_collectstatic_uploads_hashed_names_with_a_year_long_immutable_cache_and_their_content_types(
    production_static,
):
    _collectstatic()
    manifest = _manifest(production_static)
    objects = _objects()
    assert manifest["css/fxfer.css"] in objects and manifest["js/send.js"] in objects
    for original, hashed in manifest.items():
        head = objects[hashed]
        assert static.is_hashed(hashed) and not static.is_hashed(original), (original, hashed)
        assert head["CacheControl"] == "public, max-age=31536000, immutable", hashed
    # The plain names are uploaded too (collectstatic copies before it hashes); nothing links them, they change
    # with each release, so they are never cached without asking.
    for original in manifest:
        assert objects[original]["CacheControl"] == "public, no-cache"
    assert {k for k, v in objects.items() if "immutable" in v["CacheControl"]} == set(manifest.values())
    types = {name: objects[manifest[name]]["ContentType"] for name in ("css/fxfer.css", "js/send.js", "favicon.svg")}
    assert types == {
        "css/fxfer.css": "text/css; charset=utf-8",
        "js/send.js": "text/javascript; charset=utf-8",
        "favicon.svg": "image/svg+xml; charset=utf-8",
    }
    assert objects[manifest["vendor/uppy/uppy.min.js"]]["ContentType"] == "text/javascript; charset=utf-8"
    body = _s3().get_object(Bucket=STATIC_BUCKET, Key=manifest["js/send.js"])["Body"].read()
    assert body == (ROOT / "static" / "js" / "send.js").read_bytes()
    # The manifest stays on the local disk (the package ships it); the bucket holds assets only.
    assert static.MANIFEST_NAME not in objects


def test_the_manifest_the_package_computes_without_aws_names_what_collectstatic_uploads(production_static, tmp_path):
    with recording() as calls:
        offline = static.collect_manifest(tmp_path / "offline")
    assert calls.calls == []
    _collectstatic()
    assert offline == _manifest(production_static)


def test_a_page_links_the_static_origin_under_hashed_names_and_makes_no_s3_call(production_static):
    static.collect_manifest(production_static.FXFER_STATIC_MANIFEST_DIR)
    manifest = _manifest(production_static)
    with recording() as calls:
        response = Client().get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert f'href="{ORIGIN}/{manifest["css/fxfer.css"]}"' in html
    assert f'href="{ORIGIN}/{manifest["favicon.svg"]}"' in html
    assert 'href="/static/' not in html and 'src="/static/' not in html
    assert [c for c in calls.calls if c[0] == "s3"] == []


def test_the_uploader_scripts_load_from_the_static_origin(production_static):
    from django.template.loader import render_to_string

    static.collect_manifest(production_static.FXFER_STATIC_MANIFEST_DIR)
    manifest = _manifest(production_static)
    html = render_to_string("transfers/_uploader_head.html")
    for name in ("vendor/uppy/uppy.min.js", "js/send.js"):
        assert f'src="{ORIGIN}/{manifest[name]}"' in html
    assert f'href="{ORIGIN}/{manifest["vendor/uppy/uppy.min.css"]}"' in html


def test_a_static_url_with_a_path_keeps_its_objects_under_that_prefix(production_static):
    production_static.STATIC_URL = f"{ORIGIN}/assets/"
    _collectstatic(admin=False)
    manifest = _manifest(production_static)
    assert f"assets/{manifest['css/fxfer.css']}" in _objects()
    from django.templatetags.static import static as static_url

    assert static_url("css/fxfer.css") == f"{ORIGIN}/assets/{manifest['css/fxfer.css']}"


def test_a_file_missing_from_the_manifest_fails_loudly_instead_of_linking_a_plain_name(production_static):
    from django.templatetags.static import static as static_url

    static.collect_manifest(production_static.FXFER_STATIC_MANIFEST_DIR)
    with pytest.raises(ValueError, match="Missing staticfiles manifest entry"):
        static_url("js/not-collected.js")


def test_the_policy_admits_the_static_origin_for_assets_and_nothing_broader(production_static):
    static.collect_manifest(production_static.FXFER_STATIC_MANIFEST_DIR)
    policy = Client().get("/")["Content-Security-Policy"]
    directives = {d.split()[0]: d.split()[1:] for d in (p.strip() for p in policy.split(";")) if d}
    for directive in ("script-src", "style-src", "img-src", "font-src"):
        assert directives[directive][:2] == ["'self'", ORIGIN], directive
    # Scripts: this site and the origin, no host wildcard, no scheme source, no inline or eval of JavaScript.
    assert [s for s in directives["script-src"] if s not in ("'self'", ORIGIN, "'wasm-unsafe-eval'")] == []
    for directive in ("default-src", "connect-src", "form-action", "base-uri"):
        assert ORIGIN not in directives[directive], directive
    assert "*" not in policy and "https:" not in directives["script-src"]


# --- AWS failing while collectstatic uploads (deploy time) -----------------------------------------------------


@pytest.mark.parametrize(("kind", "times"), [(LOST, 1), (ERROR, PERSISTENT)], ids=["lost", "down"])
def test_an_upload_aws_failed_is_finished_by_running_collectstatic_again(production_static, kind, times):
    """A lost answer (or a timeout, a throttle) is retried by botocore (PutObject of the same bytes is idempotent);
    a failure that outlasts the retries stops collectstatic (and so the deploy block) before the manifest is
    written, and the next run uploads what is missing. No object is left without its headers."""
    # The 5th upload: a hashed name (post-processing) or a plain one, whichever collectstatic reaches then.
    with inject(kind, service="s3", operation="PutObject", nth=5, times=times) as fault:
        try:
            _collectstatic(admin=False)
        except Exception:
            assert times == PERSISTENT
        else:
            assert times == 1
    assert fault.fired
    if times == PERSISTENT:
        assert not (production_static.FXFER_STATIC_MANIFEST_DIR / static.MANIFEST_NAME).exists()
        _collectstatic(admin=False)
    manifest = _manifest(production_static)
    objects = _objects()
    assert set(manifest.values()) <= set(objects)
    assert {k for k, v in objects.items() if "immutable" in v["CacheControl"]} == set(manifest.values())


# --- `make run` and the tests: served by the app, as before ------------------------------------------------------


def test_locally_static_files_are_served_by_the_app_from_the_source_folders():
    probe = (
        "import django, json; django.setup()\n"
        "from django.conf import settings; from django.test import Client\n"
        "r = Client().get('/static/css/fxfer.css')\n"
        "print(json.dumps({'status': r.status_code, 'url': settings.STATIC_URL,"
        " 'whitenoise': 'whitenoise.middleware.WhiteNoiseMiddleware' in settings.MIDDLEWARE,"
        " 'body': b''.join(r.streaming_content if r.streaming else [r.content]).decode()}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FXFER_", "DJANGO_"))}
    env |= {"DJANGO_SETTINGS_MODULE": "fxfer.settings.local"}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert (found["status"], found["url"], found["whitenoise"]) == (200, "/static/", True)
    assert found["body"] == (ROOT / "static" / "css" / "fxfer.css").read_text()
