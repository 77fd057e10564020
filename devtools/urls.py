from django.urls import path

from devtools import views

app_name = "devtools"
urlpatterns = [
    path("mailbox/", views.mailbox, name="mailbox"),
    path("mailbox/<str:message_id>/<str:kind>", views.mailbox_simulate, name="mailbox_simulate"),
]
