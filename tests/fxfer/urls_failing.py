"""The site's URLs plus one view that fails: how the production 500 page looks is tested through it."""

from django.urls import path

from fxfer.urls import urlpatterns as site_urlpatterns


def fails(request):
    raise RuntimeError("a bug nobody caught")


urlpatterns = [path("fails", fails), *site_urlpatterns]
