"""Cold start (issue 15 item 3): any request loads every URL module (reverse() does), so what those modules import
at the top every cold start pays for. The URL modules name the views by their dotted paths (fxfer.lazyviews): a
view module, and the services, selectors and forms behind it, load when a request first reaches one of its views.
The SAML libraries, the compliance pages' reports and the transfers services load with the views that use them."""

import json
import os
import subprocess
import sys

from django.conf import settings

# Each costs the cold start several ms of CPU when imported at the top of a URL module.
DEFERRED = (
    "pynamodb",  # with the tables (fxfer.dynamo): a first /healthz reads none
    "accounts.tables",
    "transfers.models",
    "reports.models",
    "reports.services",
    "accounts.views",
    "transfers.views",
    "transfers.selectors",
    "transfers.forms",
    "onelogin",  # python3-saml
    "lxml",
    "xmlsec",
    "reports.selectors",
    "reports.csvexport",
    "reports.chart",
    "reports.quotas",
    "reports.operations",
    "reports.summary",
    # transfers.services loads a submodule when a view first uses one of its names (a lazy package).
    "transfers.services.sending",
    "transfers.services.uploads",
    "transfers.services.deletion",
    "transfers.services.expiry",
    "transfers.services.requests",
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


def test_loading_the_url_modules_imports_no_view_module_no_table_no_saml_library_no_report_and_no_service():
    loaded = _modules_after_loading_the_urls()
    assert {"accounts.urls", "transfers.urls", "reports.admin"} <= loaded  # the URL modules did load
    assert sorted(m for m in loaded if m.split(".")[0] in DEFERRED or m in DEFERRED) == []


def test_every_name_of_the_lazy_services_package_is_its_submodules_object():
    import importlib

    import transfers.services as services

    for name in services.__all__:
        module = importlib.import_module(f"transfers.services.{services._SUBMODULE[name]}")
        assert getattr(services, name) is getattr(module, name)
    assert sorted(services.__all__) == sorted(services._SUBMODULE)
    assert set(services.__all__) <= set(dir(services))


def test_every_lazy_view_of_the_url_modules_imports_and_carries_its_views_marks():
    """A lazy view stands for a real function view: a misspelt path would only show when a request came, so each
    is resolved here; middleware reads the real view's marks through it (CSRF exemption: the SAML ACS)."""
    from django.urls import URLPattern, URLResolver, get_resolver

    from fxfer.lazyviews import LazyView

    def patterns(resolver):
        for entry in resolver.url_patterns:
            if isinstance(entry, URLResolver):
                yield from patterns(entry)
            elif isinstance(entry, URLPattern):
                yield entry

    lazy = [p for p in patterns(get_resolver()) if isinstance(p.callback, LazyView)]
    assert len(lazy) > 40
    for pattern in lazy:
        view = pattern.callback._resolved()
        assert callable(view) and not isinstance(view, LazyView), pattern
    acs = next(p.callback for p in lazy if p.name == "acs")
    assert getattr(acs, "csrf_exempt", False) is True
    new = next(p.callback for p in lazy if p.name == "new")
    assert getattr(new, "csrf_exempt", False) is False
