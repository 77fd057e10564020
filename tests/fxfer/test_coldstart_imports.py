"""Cold start (issue 15 item 3): any request loads every URL module (reverse() does), so what those modules import
at the top every cold start pays for. The SAML libraries and the compliance pages' reports load with the views
that use them."""

import json
import os
import subprocess
import sys

from django.conf import settings

# Each costs the cold start several ms of CPU when imported at the top of a URL module.
DEFERRED = (
    "onelogin",  # python3-saml
    "lxml",
    "xmlsec",
    "reports.selectors",
    "reports.csvexport",
    "reports.chart",
    "reports.quotas",
    "reports.operations",
    "reports.summary",
)

_PROBE = """
import json, sys
import django
django.setup()
from django.urls import reverse
reverse("healthz")
print(json.dumps(sorted(sys.modules)))
"""


def _modules_after_loading_the_urls() -> set[str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, cwd=settings.BASE_DIR, capture_output=True, text=True, check=True
    ).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_loading_the_url_modules_imports_no_saml_library_and_no_compliance_report():
    loaded = _modules_after_loading_the_urls()
    assert "accounts.views" in loaded and "reports.admin" in loaded  # the URL modules did load
    assert sorted(m for m in loaded if m.split(".")[0] in DEFERRED or m in DEFERRED) == []
