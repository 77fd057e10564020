"""Writes of the accounts app: starting a SAML sign-in, accepting (or refusing) its response, signing out.

Every outcome of a sign-in is in the audit trail: a success and a refusal of a person the IdP vouched for as
their own events; a failure with nobody signed in (junk posts to the ACS, from anyone on the internet) counted
in one event per IP, reason and minute (reports.services.audit_count).
"""

import functools
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.http import url_has_allowed_host_and_scheme
from pynamodb.exceptions import DeleteError, PutError, UpdateError

from accounts import saml
from accounts.errors import AccountError, SigninError, SignoutError
from accounts.models import ROLE_COMPLIANCE, ROLE_EMPLOYEE, User
from accounts.selectors import user_from_record, user_sessions
from accounts.tables import SamlAssertionSeen, SamlRequest, SessionItem, UserRecord
from fxfer.aws import transient
from fxfer.change import Change, ChangeRefused
from reports.services import audit_count, audit_record

# python3-saml, lxml and xmlsec are imported by the functions that use them: a cold start that serves no SAML
# request (most of them) does not load them (~25 ms).
if TYPE_CHECKING:
    from onelogin.saml2.response import OneLogin_Saml2_Response

logger = logging.getLogger(__name__)

# Kept in the replay cache at least this long, even when an assertion claims a shorter life: python3-saml
# accepts a few minutes of clock drift past NotOnOrAfter.
_MIN_REPLAY_MEMORY = timedelta(minutes=10)


@functools.cache
def _validation_codes() -> dict[int, str]:
    from onelogin.saml2.errors import OneLogin_Saml2_ValidationError

    return {
        value: name.lower()
        for name, value in vars(OneLogin_Saml2_ValidationError).items()
        if name.isupper() and isinstance(value, int)
    }


@dataclass(frozen=True)
class Client:
    """Who is on the other end of the request, for the audit trail."""

    ip: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True)
class SigninStarted:
    redirect_url: str
    request_id: str
    browser_binding: str  # goes into a cookie of this browser; only its hash is stored


@dataclass(frozen=True)
class SignedIn:
    user: User
    next_path: str
    saml_session: dict  # what a later SP-initiated logout needs (NameID, its format and qualifiers, index)


@dataclass(frozen=True)
class SignoutStarted:
    redirect_url: str | None  # the IdP's SLO endpoint, when it has one


@dataclass(frozen=True)
class SessionsEnded:
    user_id: str
    ended: int  # live sessions ended (expired items still stored are removed too, not counted)


@dataclass(frozen=True)
class IdpLogoutDone:
    user_id: str
    ended: int
    redirect_url: str  # the IdP's SLO endpoint with our signed LogoutResponse


def user_id_for(*, idp_entity_id: str, name_id: str) -> str:
    """A stable id for (IdP, NameID): the same person at the same IdP always maps to the same user."""
    return hashlib.sha256(f"{idp_entity_id}\n{name_id}".encode()).hexdigest()


def binding_hash(value: str | None) -> str | None:
    return hashlib.sha256(value.encode()).hexdigest() if value else None


def safe_next_path(value: str | None) -> str:
    """`value` when it is a path on this site (not a page of the sign-in itself), else "/"."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    if not url_has_allowed_host_and_scheme(value, allowed_hosts=None):
        return "/"
    if value.startswith("/saml/"):
        return "/"
    return value


def _relay_state_is_local(value: str) -> bool:
    """RelayState comes back from the IdP unsigned: it is followed only when it is a path on this site."""
    if not value.startswith("/") or value.startswith(("//", "/\\")):
        return False
    parts = urlsplit(value)
    return not parts.scheme and not parts.netloc and url_has_allowed_host_and_scheme(value, allowed_hosts=None)


def saml_signin_start(*, request_data: dict, next_path: str | None, now: datetime | None = None) -> SigninStarted:
    """Make a signed AuthnRequest (HTTP-Redirect) and remember it, with where to go afterwards."""
    from onelogin.saml2.auth import OneLogin_Saml2_Auth

    at = now or datetime.now(UTC)
    relay_state = safe_next_path(next_path)
    auth = OneLogin_Saml2_Auth(request_data, saml.saml_settings_dict())
    redirect_url = auth.login(return_to=relay_state)
    request_id = auth.get_last_request_id()
    browser_binding = secrets.token_urlsafe(32)
    SamlRequest(
        request_id=request_id,
        kind="authn",
        relay_state=relay_state,
        browser_binding=binding_hash(browser_binding),
        created_at=at,
        expires_at=at + timedelta(seconds=settings.FXFER_SAML_REQUEST_SECONDS),
    ).save()
    return SigninStarted(redirect_url=redirect_url, request_id=request_id, browser_binding=browser_binding)


def saml_signin(
    *,
    request_data: dict,
    saml_response: str | None,
    relay_state: str | None,
    browser_binding: str | None,
    client: Client,
    now: datetime | None = None,
) -> SignedIn:
    """Accept a SAML response at the ACS, or raise SigninError after recording why in the audit trail.

    Refuses anything but a fresh answer, signed by the configured IdP with SHA-256 (response and assertion),
    to an AuthnRequest this SP made and has not seen answered, for this SP's audience and ACS.
    """
    at = now or datetime.now(UTC)
    claimed: dict = {}
    try:
        return _saml_signin(
            request_data=request_data,
            saml_response=saml_response,
            relay_state=relay_state,
            browser_binding=browser_binding,
            client=client,
            at=at,
            claimed=claimed,
        )
    except SigninError as error:
        if error.refused and "user_id" in claimed:
            # A person the IdP vouched for (a valid, signed assertion), refused by fxfer: their own event, and
            # (deprovisioning) the end of every session they still have.
            _refuse_person(error=error, claimed=claimed, client=client, at=at)
        else:
            # Nobody signed in: anyone on the internet can post junk to the ACS. Counted per IP, reason and
            # minute (one event however many posts), so a flood neither fills the audit trail nor slows
            # employees down.
            audit_count(
                action="signin.refused" if error.refused else "signin.failed",
                subject="saml",
                outcome="refused" if error.refused else "failed",
                ip=client.ip,
                reason=error.code,
                now=at,
            )
        # Who an unverified response claimed to be is worth knowing (an impostor's target), not worth an item.
        logger.warning(
            "signin.%s",
            "refused" if error.refused else "failed",
            extra={
                "reason": error.code,
                "claimed_issuer": claimed.get("issuer"),
                "claimed_name_id": claimed.get("name_id"),
            },
        )
        raise


def _saml_signin(
    *,
    request_data: dict,
    saml_response: str | None,
    relay_state: str | None,
    browser_binding: str | None,
    client: Client,
    at: datetime,
    claimed: dict,
) -> SignedIn:
    from lxml import etree
    from onelogin.saml2.errors import OneLogin_Saml2_Error, OneLogin_Saml2_ValidationError
    from onelogin.saml2.response import OneLogin_Saml2_Response

    if not saml_response:
        raise SigninError("missing_response", "No SAMLResponse in the request.")
    try:
        response = OneLogin_Saml2_Response(saml.saml_settings(), saml_response)
    except Exception as exc:  # bad base64, not XML, a DTD or an entity: nothing to trust
        raise SigninError("malformed_response", f"{type(exc).__name__}: {exc}") from None
    claimed.update(_claimed_identity(response))

    # python3-saml parses without comments, which defeats the NameID comment trick (the signature covers the
    # text without comments). A genuine IdP never sends comments, so a response carrying any is refused outright.
    if _has_xml_comments(response.response):
        raise SigninError("xml_comment", "The response contains XML comments.")

    # SP-initiated only: the response must answer a request this SP made and still remembers.
    in_response_to = response.document.get("InResponseTo")
    if not in_response_to:
        raise SigninError("unsolicited", "The response does not answer any request (no InResponseTo).")
    outstanding = _outstanding_request(in_response_to, kind="authn", at=at)
    if outstanding is None:
        raise SigninError("unknown_request", "The response answers no request this site has outstanding.")
    # Login CSRF: a valid response for someone else's request, posted from a victim's browser, must not sign that
    # browser in. The cookie set when this request started must come back, and be the same one.
    bound = outstanding.browser_binding
    if bound and not browser_binding:
        raise SigninError("binding_missing", "The browser that started this sign-in did not come back with it.")
    if bound and not hmac.compare_digest(binding_hash(browser_binding), bound):
        raise SigninError("other_browser", "The response answers a sign-in started in another browser.")

    relay_state = relay_state or ""
    if relay_state and not _relay_state_is_local(relay_state):
        raise SigninError("relay_state_not_local", f"RelayState is not a path on this site: {relay_state[:200]}")
    if relay_state and relay_state != outstanding.relay_state:
        raise SigninError("relay_state_mismatch", "RelayState differs from the one sent with the request.")

    try:
        response.is_valid(request_data, request_id=in_response_to, raise_exceptions=True)
    except OneLogin_Saml2_ValidationError as exc:
        raise SigninError(_validation_codes().get(exc.code, "invalid_response"), str(exc)) from None
    except (OneLogin_Saml2_Error, etree.Error, ValueError) as exc:
        raise SigninError("invalid_response", f"{type(exc).__name__}: {exc}") from None

    assertion_id = response.get_assertion_id()
    not_on_or_after = response.get_assertion_not_on_or_after()
    remember_until = (
        max(datetime.fromtimestamp(not_on_or_after, UTC) if not_on_or_after else at, at) + _MIN_REPLAY_MEMORY
    )
    name_id = response.get_nameid()
    user_id = user_id_for(idp_entity_id=settings.FXFER_SAML_IDP_ENTITY_ID, name_id=name_id)
    claimed["user_id"] = user_id
    claimed["assertion_id"] = assertion_id
    try:
        SamlAssertionSeen(assertion_id=assertion_id, user_id=user_id, seen_at=at, expires_at=remember_until).save(
            condition=SamlAssertionSeen.assertion_id.does_not_exist()
        )
    except PutError:
        raise SigninError("replayed", f"Assertion {assertion_id} was already used.") from None
    try:
        outstanding.update(
            actions=[SamlRequest.answered_at.set(at)], condition=SamlRequest.answered_at.does_not_exist()
        )
    except UpdateError:
        raise SigninError("request_already_answered", "The request was answered already.") from None

    attributes = response.get_attributes()
    profile = _profile(attributes)
    claimed.update(email=profile["email"], groups=profile["groups"])
    roles = roles_for(profile["groups"])
    if not roles:
        raise SigninError("not_authorised", "The person is in no group that fxfer admits.", refused=True)

    record = _user_save(
        user_id=user_id,
        idp_entity_id=settings.FXFER_SAML_IDP_ENTITY_ID,
        name_id=name_id,
        profile=profile,
        roles=roles,
        at=at,
    )
    audit_record(
        action="signin.succeeded",
        actor=f"user:{user_id}",
        subject=f"user:{user_id}",
        ip=client.ip,
        user_agent=client.user_agent,
        details={"email": profile["email"], "roles": sorted(roles), "assertion_id": assertion_id},
        now=at,
    )
    return SignedIn(
        user=user_from_record(record),
        next_path=outstanding.relay_state,
        saml_session={
            "name_id": name_id,
            "name_id_format": response.get_nameid_format(),
            "name_id_nq": response.get_nameid_nq(),
            "name_id_spnq": response.get_nameid_spnq(),
            "session_index": response.get_session_index(),
        },
    )


def roles_for(groups: list[str]) -> frozenset[str]:
    """The fxfer roles that these IdP groups grant (settings.FXFER_ROLE_GROUPS)."""
    member_of = set(groups)
    return frozenset(
        role for role in (ROLE_EMPLOYEE, ROLE_COMPLIANCE) if member_of & set(settings.FXFER_ROLE_GROUPS.get(role, ()))
    )


def _profile(attributes: dict) -> dict:
    def first(field: str) -> str:
        for name in settings.FXFER_SAML_ATTRIBUTES[field]:
            values = attributes.get(name) or []
            if values and values[0]:
                return str(values[0]).strip()
        return ""

    groups: list[str] = []
    for name in settings.FXFER_SAML_ATTRIBUTES["groups"]:
        groups.extend(str(value).strip() for value in attributes.get(name) or [] if value)
    return {
        "email": first("email").lower(),
        "display_name": first("display_name"),
        "department": first("department"),
        "manager_email": first("manager").lower(),
        "groups": sorted(set(groups)),
    }


def _user_save(
    *, user_id: str, idp_entity_id: str, name_id: str, profile: dict, roles: frozenset[str], at: datetime
) -> UserRecord:
    """Create or refresh the user from what the IdP said just now (groups and roles follow the IdP)."""
    try:
        created_at = UserRecord.get(user_id, consistent_read=True).created_at
    except UserRecord.DoesNotExist:
        created_at = at
    record = UserRecord(
        user_id=user_id,
        idp_entity_id=idp_entity_id,
        name_id=name_id,
        email=profile["email"],
        email_key=profile["email"] or None,
        display_name=profile["display_name"],
        department=profile["department"],
        manager_email=profile["manager_email"],
        groups=profile["groups"],
        roles=sorted(roles),
        created_at=created_at,
        last_sign_in_at=at,
    )
    record.save()
    return record


def _outstanding_request(request_id: str, *, kind: str, at: datetime) -> SamlRequest | None:
    if len(request_id) > 256:
        return None
    try:
        item = SamlRequest.get(request_id, consistent_read=True)
    except SamlRequest.DoesNotExist:
        return None
    if item.kind != kind or item.expires_at <= at:
        return None  # TTL deletes late: the expiry is checked here
    return item


def _has_xml_comments(xml: bytes | str) -> bool:
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=False, load_dtd=False)
    try:
        root = etree.fromstring(xml if isinstance(xml, bytes) else xml.encode(), parser=parser)
    except etree.XMLSyntaxError:
        return True
    return bool(root.xpath("//comment()"))


def _claimed_identity(response: "OneLogin_Saml2_Response") -> dict:
    """What the (not yet verified) response claims, for the audit trail of a failure."""
    from onelogin.saml2.xml_utils import OneLogin_Saml2_XML

    claimed = {}
    issuers = OneLogin_Saml2_XML.query(response.document, "/samlp:Response/saml:Issuer")
    if issuers:
        claimed["issuer"] = (issuers[0].text or "")[:256]
    name_ids = OneLogin_Saml2_XML.query(response.document, "//saml:Assertion/saml:Subject/saml:NameID")
    if name_ids:
        claimed["name_id"] = "".join(name_ids[0].itertext())[:256]
    return claimed


def saml_signout_start(
    *, request_data: dict, user: User, saml_session: dict | None, client: Client, now: datetime | None = None
) -> SignoutStarted:
    """Record the sign-out and, when the IdP has an SLO endpoint, make a signed LogoutRequest for it.

    The caller ends the local session (server-side) whatever happens at the IdP.
    """
    from onelogin.saml2.auth import OneLogin_Saml2_Auth

    at = now or datetime.now(UTC)
    audit_record(
        action="signout",
        actor=f"user:{user.id}",
        subject=f"user:{user.id}",
        ip=client.ip,
        user_agent=client.user_agent,
        now=at,
    )
    if not settings.FXFER_SAML_IDP_SLO_URL or not saml_session:
        return SignoutStarted(redirect_url=None)
    auth = OneLogin_Saml2_Auth(request_data, saml.saml_settings_dict())
    redirect_url = auth.logout(
        return_to=saml.absolute_url(saml.LOGOUT_PATH),
        name_id=saml_session.get("name_id"),
        session_index=saml_session.get("session_index"),
        nq=saml_session.get("name_id_nq"),
        name_id_format=saml_session.get("name_id_format"),
        spnq=saml_session.get("name_id_spnq"),
    )
    SamlRequest(
        request_id=auth.get_last_request_id(),
        kind="logout",
        relay_state="/",
        created_at=at,
        expires_at=at + timedelta(seconds=settings.FXFER_SAML_REQUEST_SECONDS),
    ).save()
    return SignoutStarted(redirect_url=redirect_url)


def saml_signout_finish(*, request_data: dict, saml_response: str, now: datetime | None = None) -> None:
    """Check the IdP's LogoutResponse: signed, answering a LogoutRequest of ours, successful."""
    from onelogin.saml2.constants import OneLogin_Saml2_Constants
    from onelogin.saml2.logout_response import OneLogin_Saml2_Logout_Response

    at = now or datetime.now(UTC)
    try:
        response = OneLogin_Saml2_Logout_Response(saml.saml_settings(), saml_response)
        in_response_to = response.document.get("InResponseTo") or ""
    except Exception as exc:
        raise SignoutError("malformed_response", f"{type(exc).__name__}: {exc}") from None
    outstanding = _outstanding_request(in_response_to, kind="logout", at=at) if in_response_to else None
    if outstanding is None:
        raise SignoutError("unknown_request", "The logout response answers no request of this site.")
    try:
        response.is_valid(request_data, request_id=in_response_to, raise_exceptions=True)
    except Exception as exc:
        raise SignoutError("invalid_response", f"{type(exc).__name__}: {exc}") from None
    try:
        outstanding.delete(condition=SamlRequest.request_id.exists())
    except DeleteError:
        raise SignoutError("request_already_answered", "The logout request was answered already.") from None
    if response.get_status() != OneLogin_Saml2_Constants.STATUS_SUCCESS:
        raise SignoutError("idp_refused", f"The IdP answered {response.get_status()}.")


# --- Ending a person's sessions: deprovisioning, "sign out everywhere", a logout the IdP started ----------------

# Session deletes per transaction (at most 100 items, and room for the events and the person's record).
_SESSIONS_PER_CHANGE = 90


def _end_sessions(*, op: str, user_id: str, at: datetime, record: Callable[[Change, int, int], None]) -> int:
    """Delete every session item of `user_id`, with the events `record(change, part, deleted)` adds to each
    transaction (one transaction unless the person has more sessions than one holds). Returns the live count."""
    found = user_sessions(user_id=user_id, now=at)
    keys = list(found.session_keys)
    parts = [keys[n : n + _SESSIONS_PER_CHANGE] for n in range(0, len(keys), _SESSIONS_PER_CHANGE)] or [[]]
    for part, chunk in enumerate(parts):
        change = Change(op=op if part == 0 else f"{op}#{part}", now=at)
        for key in chunk:
            # Unconditional: a session that ended meanwhile (signed out, expired) is just as ended.
            change.delete(SessionItem(session_key=key))
        record(change, part, len(chunk))
        change.commit(send_mails=False)
    return found.live


def _refuse_person(*, error: SigninError, claimed: dict, client: Client, at: datetime) -> None:
    """Deprovisioning: the IdP vouched for this person and fxfer no longer admits them. Their roles are cleared
    (a session the index does not show yet is refused by the backend on its next request), every session of
    theirs is deleted, and the refusal is recorded, in one transaction."""
    user_id = claimed["user_id"]
    details = {"reason": error.code, "message": error.message[:500], "claimed": claimed}
    try:
        known = UserRecord.get(user_id, consistent_read=True)
    except UserRecord.DoesNotExist:
        known = None
    if known is None:  # never signed in: no session to end
        audit_record(
            action="signin.refused",
            actor=f"user:{user_id}",
            subject="saml",
            outcome="refused",
            ip=client.ip,
            user_agent=client.user_agent,
            details=details,
            now=at,
        )
        return

    def record(change: Change, part: int, deleted: int) -> None:
        if part == 0:
            change.update(
                known,
                actions=[UserRecord.roles.set([]), UserRecord.groups.set(claimed.get("groups") or [])],
                condition=UserRecord.user_id.exists(),
            )
            change.audit(
                "signin.refused",
                actor=f"user:{user_id}",
                subject="saml",
                outcome="refused",
                ip=client.ip,
                user_agent=client.user_agent,
                **details,
            )
        change.audit(
            "user.sessions_ended",
            actor="system",
            subject=f"user:{user_id}",
            reason="deprovisioned",
            sessions=deleted,
        )

    _end_sessions(
        op=f"signin.refused:{claimed.get('assertion_id') or secrets.token_hex(8)}",
        user_id=user_id,
        at=at,
        record=record,
    )


def user_sessions_end(*, user_id: str, officer_id: str, client: Client, now: datetime | None = None) -> SessionsEnded:
    """Compliance's "sign out everywhere": delete every session of the person, audited with the officer as
    actor. Raises AccountError("not_found") for an unknown person, ("unavailable") when AWS keeps failing
    (nothing was lost: each transaction commits whole or not at all, and pressing again finishes the job)."""
    at = now or datetime.now(UTC)
    if len(user_id or "") != 64:
        raise AccountError("not_found")

    def record(change: Change, part: int, deleted: int) -> None:
        change.audit(
            "user.sessions_ended",
            actor=f"user:{officer_id}",
            subject=f"user:{user_id}",
            ip=client.ip,
            user_agent=client.user_agent,
            reason="compliance",
            sessions=deleted,
            part=part or None,
        )

    try:
        try:
            UserRecord.get(user_id, consistent_read=True)
        except UserRecord.DoesNotExist:
            raise AccountError("not_found") from None
        ended = _end_sessions(
            op=f"sessions.end:{user_id}:{secrets.token_hex(8)}", user_id=user_id, at=at, record=record
        )
    except Exception as exc:
        if not transient(exc):
            raise
        logger.warning("accounts.aws_unavailable", extra={"service": "user_sessions_end"})
        raise AccountError("unavailable") from exc
    return SessionsEnded(user_id=user_id, ended=ended)


# How far a LogoutRequest's IssueInstant may be from now (clock drift both ways), and how long its id is
# remembered: a captured request cannot be replayed later to sign the person out again.
_LOGOUT_REQUEST_DRIFT = timedelta(minutes=5)


def saml_idp_logout(
    *, request_data: dict, saml_request: str, client: Client, now: datetime | None = None
) -> IdpLogoutDone:
    """A LogoutRequest the IdP started (HTTP-Redirect): check it strictly (signature over the query with
    SHA-256, issuer present and ours, destination, NotOnOrAfter, a fresh IssueInstant, not seen before), end
    every session of its NameID's person, record it, and answer with a signed LogoutResponse (Success).
    Raises SignoutError after counting the failure; nothing changes then."""
    at = now or datetime.now(UTC)
    try:
        return _saml_idp_logout(request_data=request_data, saml_request=saml_request, client=client, at=at)
    except SignoutError as error:
        audit_count(
            action="signout.idp_failed", subject="saml", outcome="failed", ip=client.ip, reason=error.code, now=at
        )
        logger.warning("signout.idp_failed", extra={"reason": error.code})
        raise


def _saml_idp_logout(*, request_data: dict, saml_request: str, client: Client, at: datetime) -> IdpLogoutDone:
    from onelogin.saml2.auth import OneLogin_Saml2_Auth
    from onelogin.saml2.errors import OneLogin_Saml2_ValidationError
    from onelogin.saml2.logout_request import OneLogin_Saml2_Logout_Request
    from onelogin.saml2.logout_response import OneLogin_Saml2_Logout_Response
    from onelogin.saml2.utils import OneLogin_Saml2_Utils
    from onelogin.saml2.xml_utils import OneLogin_Saml2_XML

    if not saml_request:
        raise SignoutError("missing_request", "No SAMLRequest in the request.")
    settings_ = saml.saml_settings()
    try:
        logout_request = OneLogin_Saml2_Logout_Request(settings_, saml_request)
        xml = logout_request.get_xml()
        root = OneLogin_Saml2_XML.to_etree(xml)
    except Exception as exc:  # bad base64 or deflate, not XML, a DTD: nothing to trust
        raise SignoutError("malformed_request", f"{type(exc).__name__}: {exc}") from None
    if _has_xml_comments(xml):
        raise SignoutError("xml_comment", "The request contains XML comments.")

    auth = OneLogin_Saml2_Auth(request_data, saml.saml_settings_dict())
    if not auth.validate_request_signature(request_data["get_data"]):
        raise SignoutError("invalid_signature", auth.get_last_error_reason() or "The signature does not verify.")
    try:
        logout_request.is_valid(request_data, raise_exceptions=True)
    except OneLogin_Saml2_ValidationError as exc:
        raise SignoutError(_validation_codes().get(exc.code, "invalid_request"), str(exc)) from None
    except Exception as exc:
        raise SignoutError("invalid_request", f"{type(exc).__name__}: {exc}") from None
    # python3-saml lets a request without Issuer or Destination through; an IdP always sends both.
    issuer = OneLogin_Saml2_Logout_Request.get_issuer(root)
    if issuer != settings.FXFER_SAML_IDP_ENTITY_ID:
        raise SignoutError("wrong_issuer", f"Issuer {str(issuer)[:200]!r} is not the configured IdP.")
    if root.get("Destination") != saml.absolute_url(saml.LOGOUT_PATH):
        raise SignoutError("wrong_destination", "The request is addressed to another endpoint.")
    try:
        issued = datetime.fromtimestamp(OneLogin_Saml2_Utils.parse_SAML_to_time(root.get("IssueInstant")), UTC)
    except Exception:
        raise SignoutError("invalid_request", "The request has no valid IssueInstant.") from None
    if abs(issued - at) > _LOGOUT_REQUEST_DRIFT:
        raise SignoutError("stale_request", "The request was issued too long ago (or in the future).")
    request_id = OneLogin_Saml2_Logout_Request.get_id(root)
    try:
        name_id = OneLogin_Saml2_Logout_Request.get_nameid(root)
    except Exception:
        name_id = ""
    if not request_id or not name_id:
        raise SignoutError("invalid_request", "The request names no one.")

    user_id = user_id_for(idp_entity_id=settings.FXFER_SAML_IDP_ENTITY_ID, name_id=name_id)
    seen = SamlAssertionSeen(
        assertion_id=f"logout:{request_id}"[:1024],
        user_id=user_id,
        seen_at=at,
        expires_at=at + 2 * _LOGOUT_REQUEST_DRIFT + _MIN_REPLAY_MEMORY,
    )

    def record(change: Change, part: int, deleted: int) -> None:
        if part == 0:
            change.put(seen, condition=SamlAssertionSeen.assertion_id.does_not_exist(), label="logout-request")
        change.audit(
            "signout.idp",
            actor=f"user:{user_id}",
            subject=f"user:{user_id}",
            ip=client.ip,
            user_agent=client.user_agent,
            sessions=deleted,
            request_id=request_id[:256],
        )

    try:
        # Each arrival is its own operation: a replay must meet the remembered id, not pass as a retry of the first.
        op = f"signout.idp:{request_id}:{secrets.token_hex(8)}"
        ended = _end_sessions(op=op, user_id=user_id, at=at, record=record)
    except ChangeRefused as refused:
        if refused.failed("logout-request"):
            raise SignoutError("replayed", f"LogoutRequest {request_id[:200]} was already used.") from None
        raise

    answer = OneLogin_Saml2_Logout_Response(settings_)
    answer.build(request_id)
    parameters = {"SAMLResponse": answer.get_response()}
    relay_state = request_data["get_data"].get("RelayState")
    if relay_state:
        parameters["RelayState"] = relay_state
    auth.add_response_signature(parameters, settings_.get_security_data()["signatureAlgorithm"])
    return IdpLogoutDone(
        user_id=user_id, ended=ended, redirect_url=auth.redirect_to(settings_.get_idp_slo_response_url(), parameters)
    )
