"""The two languages at the edges: how a moment is written for people, and which language a guest's mail is in.

Times are stored in UTC; people read them in the site's time zone with the zone named, in the active language's
usual way (fxfer/formats/<lang>/formats.py): "30 Nov 2026, 21:44 JST" or "2026年11月30日 21:44 JST".
"""

from datetime import datetime

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone, translation
from django.utils.formats import date_format


def local_time(moment: datetime) -> str:
    """A moment in the site's time zone, zone named, in the active language's format (pages and mails)."""
    return date_format(timezone.localtime(moment, timezone.get_default_timezone()), "DATETIME_FORMAT")


def language_codes() -> list[str]:
    return [code for code, _name in settings.LANGUAGES]


def page_language() -> str:
    """The language active now (the person's page), as one of the site's codes."""
    active = translation.get_language()
    return active if active in language_codes() else settings.LANGUAGE_CODE


def in_owner_language(transfer):
    """Render the employee's own notices in the language they made the transfer in (a guest's request that
    causes one must not put it in the guest's language)."""
    return translation.override(transfer.owner_language or settings.LANGUAGE_CODE)


def default_mail_language(email: str) -> str:
    """The language a guest's mails are in unless the sender chose: Japanese for a .jp address, else the site's."""
    if email.strip().lower().rstrip(".").endswith(".jp"):
        return "ja"
    return settings.LANGUAGE_CODE


def mail_language(chosen: str | None, email: str) -> str:
    """The sender's choice when it is one of the site's languages, else the default for the address."""
    return chosen if chosen in language_codes() else default_mail_language(email)


def start_in(request: HttpRequest, language: str) -> str | None:
    """A guest's first page after their link: in the language the sender chose for them, unless they already
    chose one themselves (the language cookie). Returns the language to remember, or None."""
    if request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME) in language_codes() or language not in language_codes():
        return None
    translation.activate(language)
    request.LANGUAGE_CODE = language
    return language


def remember(response: HttpResponse, language: str | None) -> HttpResponse:
    """Keep `language` for the guest's next pages (code, files), as the switcher would: they may still switch."""
    if language:
        response.set_cookie(
            settings.LANGUAGE_COOKIE_NAME,
            language,
            max_age=settings.LANGUAGE_COOKIE_AGE,
            path=settings.LANGUAGE_COOKIE_PATH,
            domain=settings.LANGUAGE_COOKIE_DOMAIN,
            secure=settings.LANGUAGE_COOKIE_SECURE,
            httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
            samesite=settings.LANGUAGE_COOKIE_SAMESITE,
        )
    return response
