from django.urls import path

from fxfer.lazyviews import lazy

app_name = "devtools"
urlpatterns = [
    path("mailbox/", lazy("devtools.views.mailbox"), name="mailbox"),
    path("mailbox/<str:message_id>/<str:kind>", lazy("devtools.views.mailbox_simulate"), name="mailbox_simulate"),
]
