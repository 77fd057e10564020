from django.conf import settings
from django.urls import include, path

from fxfer import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
]

if getattr(settings, "FXFER_DEV_MAILBOX", False):
    # Local development only: read the mail the SES stand-in received.
    urlpatterns += [path("dev/", include("devtools.urls"))]
