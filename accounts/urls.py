from django.urls import path

from fxfer.lazyviews import lazy

app_name = "accounts"
urlpatterns = [
    path("metadata/", lazy("accounts.views.metadata"), name="metadata"),
    path("login/", lazy("accounts.views.login"), name="login"),
    path("acs/", lazy("accounts.views.acs"), name="acs"),
    path("logout/", lazy("accounts.views.logout"), name="logout"),
]
