"""Django's message storage (cookie, then session) with the cookie's signer made when a message cookie is read or
written, not when every request starts.

Django's CookieStorage builds its signer in __init__, which MessageMiddleware runs for every request; building it
reads SECRET_KEY. In production that is an SSM parameter read on first use (fxfer.env.secret), so every cold
start's first request (the health check, a static page) would wait for SSM. Here the signer is built the first time
it signs or checks a cookie: a request that neither has a message cookie nor adds a message never reads the key.
"""

from functools import cached_property

from django.contrib.messages.storage.base import BaseStorage
from django.contrib.messages.storage.cookie import CookieStorage
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.messages.storage.session import SessionStorage
from django.core import signing


class LazySignerCookieStorage(CookieStorage):
    def __init__(self, *args, **kwargs):
        BaseStorage.__init__(self, *args, **kwargs)  # CookieStorage.__init__ only builds the signer

    @cached_property
    def signer(self):
        return signing.get_cookie_signer(salt=self.key_salt)


class MessageStorage(FallbackStorage):
    storage_classes = (LazySignerCookieStorage, SessionStorage)
