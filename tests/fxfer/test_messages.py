"""fxfer.messages: Django's messages still round-trip in a signed cookie, and a request without a message never
reads SECRET_KEY (in production an SSM parameter read on first use: the health check must not wait for it)."""

from django.contrib import messages
from django.http import HttpResponse
from django.test import RequestFactory, override_settings
from django.utils.functional import lazy

from fxfer.messages import MessageStorage


def _request(cookies: dict | None = None):
    request = RequestFactory().get("/")
    request.COOKIES.update(cookies or {})
    request.session = {}
    request._messages = MessageStorage(request)
    return request


def test_a_request_without_messages_never_reads_the_secret_key():
    reads = []
    secret_key = lazy(lambda: reads.append(1) or "a-secret-key-only-for-this-test", str)()
    with override_settings(SECRET_KEY=secret_key):
        request = _request()
        assert list(messages.get_messages(request)) == []
        request._messages.update(HttpResponse())
    assert reads == []


def test_a_message_still_travels_in_a_signed_cookie():
    request = _request()
    messages.info(request, "Sent.")
    response = HttpResponse()
    request._messages.update(response)
    cookie = response.cookies["messages"].value
    assert [m.message for m in messages.get_messages(_request({"messages": cookie}))] == ["Sent."]
    # A cookie changed by the browser is not believed.
    assert list(messages.get_messages(_request({"messages": cookie[:-2] + "xx"}))) == []
