"""Accounts' DynamoDB items: people known from the IdP, SAML requests and assertions seen, sessions."""

from pynamodb.attributes import (
    ListAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import GlobalSecondaryIndex, IncludeProjection, KeysOnlyProjection
from pynamodb.models import Model as DynamoModel

from fxfer import dynamo


class UserByEmail(GlobalSecondaryIndex):
    """People by their address as the IdP last gave it (compliance finds a person by email). Sparse: a key
    attribute of an index cannot be empty, so `email_key` is absent when the IdP sent no address."""

    class Meta:
        index_name = "by-email"
        projection = KeysOnlyProjection()

    email_key = UnicodeAttribute(hash_key=True)


class UserRecord(DynamoModel):
    """A person known from the IdP, keyed by a stable id derived from (IdP entity id, NameID)."""

    Meta = dynamo.meta("users")
    by_email = UserByEmail()

    user_id = UnicodeAttribute(hash_key=True)  # sha256 hex of "<idp entity id>\n<NameID>"
    idp_entity_id = UnicodeAttribute()
    name_id = UnicodeAttribute()
    email = UnicodeAttribute(default="")
    # `email` lowercased, or absent (see UserByEmail). Set at each sign-in: everyone with a live session has
    # signed in within the absolute timeout, so everyone who can be signed out can be found.
    email_key = UnicodeAttribute(null=True)
    display_name = UnicodeAttribute(default="")
    department = UnicodeAttribute(default="")
    manager_email = UnicodeAttribute(default="")
    groups = ListAttribute(of=UnicodeAttribute, default=list)
    roles = ListAttribute(of=UnicodeAttribute, default=list)
    created_at = UTCDateTimeAttribute()
    last_sign_in_at = UTCDateTimeAttribute()


class SamlRequest(DynamoModel):
    """An AuthnRequest (or LogoutRequest) this SP sent and has not yet seen answered.

    Keyed by the request id, not by the browser's session: the IdP's POST to the ACS is cross-site, and a
    browser drops SameSite=Lax cookies (the session's) on it, so the ACS finds the request through the response's
    InResponseTo. The browser that started it must still come back with its binding cookie (SameSite=None), or the
    response is refused (login CSRF). It is marked answered with a conditional update, so one request is answered
    at most once;
    the item stays (until its TTL) so that a replayed response reaches the assertion replay check and is
    reported as what it is.
    """

    Meta = dynamo.meta("saml-requests")

    request_id = UnicodeAttribute(hash_key=True)
    kind = UnicodeAttribute()  # "authn" or "logout"
    relay_state = UnicodeAttribute(default="/")
    # sha256 of a random value kept in a cookie of the browser that started the sign-in (when it sends one).
    browser_binding = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    answered_at = UTCDateTimeAttribute(null=True)
    expires_at = TTLAttribute()


class SamlAssertionSeen(DynamoModel):
    """Replay cache: an assertion id accepted once. Kept until the assertion's NotOnOrAfter has passed."""

    Meta = dynamo.meta("saml-assertions-seen")

    assertion_id = UnicodeAttribute(hash_key=True)
    user_id = UnicodeAttribute(null=True)
    seen_at = UTCDateTimeAttribute()
    expires_at = TTLAttribute()


class SessionByUser(GlobalSecondaryIndex):
    """A signed-in person's sessions (sparse: anonymous sessions carry no user_id), so that all of them can be
    ended at once: deprovisioning, "sign out everywhere", a logout the IdP started."""

    class Meta:
        index_name = "by-user"
        projection = IncludeProjection(["expires_at", "absolute_expires_at"])

    user_id = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class SessionItem(DynamoModel):
    """A Django session. `expires_at` (idle) slides with use; `absolute_expires_at` is fixed at creation."""

    Meta = dynamo.meta("sessions")
    by_user = SessionByUser()

    session_key = UnicodeAttribute(hash_key=True)
    data = UnicodeAttribute()
    user_id = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    absolute_expires_at = UTCDateTimeAttribute()
    expires_at = TTLAttribute()
