from django.urls import path

from devtools.idp import views

app_name = "idp"
urlpatterns = [
    path("metadata/", views.metadata, name="metadata"),
    path("sso/", views.sso, name="sso"),
    path("slo/", views.slo, name="slo"),
    path("logout/", views.logout_everywhere, name="logout"),
]
