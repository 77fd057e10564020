from django.urls import path

from accounts import views

app_name = "accounts"
urlpatterns = [
    path("metadata/", views.metadata, name="metadata"),
    path("login/", views.login, name="login"),
    path("acs/", views.acs, name="acs"),
    path("logout/", views.logout, name="logout"),
]
