from django.urls import path

from fxfer.lazyviews import lazy

app_name = "idp"
urlpatterns = [
    path("metadata/", lazy("devtools.idp.views.metadata"), name="metadata"),
    path("sso/", lazy("devtools.idp.views.sso"), name="sso"),
    path("slo/", lazy("devtools.idp.views.slo"), name="slo"),
    path("logout/", lazy("devtools.idp.views.logout_everywhere"), name="logout"),
]
