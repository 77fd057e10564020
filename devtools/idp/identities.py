"""The demo identities the local IdP offers. Claims are named and shaped as Entra ID sends them."""

from dataclasses import dataclass, field

# Group object ids, as Entra ID puts them in the groups claim (local and test settings map them to roles).
EMPLOYEES_GROUP = "5e7c1a0e-3d4b-4f3a-9a57-0c1d2e3f4a5b"
COMPLIANCE_GROUP = "9b2f6c4d-8e1a-4c7b-b3d2-6a5f4e3d2c1b"
# Supervisor approval's group (FXFER_APPROVER=group:<this>, or the fallback and escalation group).
APPROVERS_GROUP = "3c8d2e1f-6a4b-4d5c-8e7f-1a2b3c4d5e6f"

CLAIM_EMAIL = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
CLAIM_NAME = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
CLAIM_DISPLAY_NAME = "http://schemas.microsoft.com/identity/claims/displayname"
CLAIM_DEPARTMENT = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/department"
CLAIM_GROUPS = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"
# The manager's address: Entra ID has no such claim by default; the admin adds one (docs/deploy.md, step 5).
CLAIM_MANAGER = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/manager"


@dataclass(frozen=True)
class DemoIdentity:
    key: str
    email: str
    display_name: str
    department: str
    groups: tuple[str, ...] = field(default_factory=tuple)
    description: str = ""
    manager: str = ""

    @property
    def name_id(self) -> str:
        return self.email

    def claims(self) -> dict[str, list[str]]:
        claims = {
            CLAIM_EMAIL: [self.email],
            CLAIM_NAME: [self.email],
            CLAIM_DISPLAY_NAME: [self.display_name],
            CLAIM_DEPARTMENT: [self.department],
        }
        if self.groups:
            claims[CLAIM_GROUPS] = list(self.groups)
        if self.manager:
            claims[CLAIM_MANAGER] = [self.manager]
        return claims


DEMO_IDENTITIES = {
    identity.key: identity
    for identity in (
        DemoIdentity(
            key="alice",
            email="alice@example.com",
            display_name="Alice Example",
            department="Sales",
            groups=(EMPLOYEES_GROUP,),
            description="Employee: may send and request files",
            manager="dave@example.com",
        ),
        DemoIdentity(
            key="dave",
            email="dave@example.com",
            display_name="Dave Example",
            department="Sales",
            groups=(EMPLOYEES_GROUP, APPROVERS_GROUP),
            description="Alice's manager: approves her transfers",
            manager="erin@example.com",
        ),
        DemoIdentity(
            key="carol",
            email="carol@example.com",
            display_name="Carol Example",
            department="Compliance",
            groups=(COMPLIANCE_GROUP,),
            description="Compliance officer: admin access",
            manager="erin@example.com",
        ),
        DemoIdentity(
            key="nobody",
            email="nobody@example.com",
            display_name="Nobody Example",
            department="Visitors",
            groups=(),
            description="In no fxfer group: refused",
        ),
    )
}
