from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.i18n import set_language

from fxfer import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("help", views.help_page, name="help"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("language", set_language, name="set_language"),  # POST only, CSRF-checked; remembers the choice
    path("saml/", include("accounts.urls")),
    path("admin/", admin.site.urls),  # the compliance admin (reports.admin.ComplianceAdminSite)
    path("", include("transfers.urls")),
]

if getattr(settings, "FXFER_LOCAL_IDP", False):
    # Local development and tests only: a real SAML IdP (pysaml2) with a few demo identities.
    urlpatterns += [path("idp/", include("devtools.idp.urls"))]

if getattr(settings, "FXFER_DEV_MAILBOX", False):
    # Local development only: read the mail the SES stand-in received.
    urlpatterns += [path("dev/", include("devtools.urls"))]
