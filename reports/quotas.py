"""The compliance page for employees' quotas of bytes in flight (transfers.services.quota): find a person by
address, see what they have in flight against their allowance, and raise (or lower, or reset) it with a reason.
The change and its "quota.changed" event commit together, with the officer as actor."""

from dataclasses import dataclass
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from accounts.forms import PersonSearchForm
from accounts.selectors import people_by_email
from transfers.errors import TransferError
from transfers.policy import bytes_text
from transfers.services.quota import QuotaState, quota_set, quota_state

GB = 1024**3  # as the pages show sizes (filesizeformat)
MAX_GB = 1024 * 1024  # 1 PiB: far above anything sensible, low enough that a typo is refused


class QuotaChangeForm(forms.Form):
    user_id = forms.CharField(widget=forms.HiddenInput, max_length=64)
    version = forms.IntegerField(widget=forms.HiddenInput, min_value=0)
    email = forms.EmailField(widget=forms.HiddenInput, max_length=320)
    allowance_gb = forms.IntegerField(label=_("New allowance (GB)"), min_value=0, max_value=MAX_GB, required=False)
    use_default = forms.BooleanField(label=_("Back to the site default"), required=False)
    reason = forms.CharField(label=_("Reason"), max_length=500, widget=forms.Textarea(attrs={"rows": 2}))

    def clean(self):
        data = super().clean()
        if not data.get("use_default") and data.get("allowance_gb") is None:
            raise forms.ValidationError(_("Give the new allowance in GB, or choose the site default."))
        return data

    def quota_bytes(self) -> int | None:
        if self.cleaned_data["use_default"]:
            return None
        return self.cleaned_data["allowance_gb"] * GB


@dataclass(frozen=True)
class PersonQuota:
    user_id: str
    email: str
    name: str
    department: str
    usage: QuotaState
    form: QuotaChangeForm

    @property
    def in_flight_text(self) -> str:
        return bytes_text(self.usage.in_flight)

    @property
    def allowance_text(self) -> str:
        return bytes_text(self.usage.allowance)


def quota_view(site, request):
    """GET ?email=: the people with that address, each with usage and a change form. POST: change one."""
    if request.method == "POST":
        return _change(request)
    find = PersonSearchForm(request.GET or None)
    people = None
    if find.is_bound and find.is_valid():
        people = [
            _person(p.user, email=find.cleaned_data["email"]) for p in people_by_email(email=find.cleaned_data["email"])
        ]
    context = {"form": find, "submit": _("Find"), "people": people, "default_text": bytes_text(_default())}
    return site._render(request, "admin/fxfer/quota.html", _("Quotas"), context)


def _person(user, *, email: str) -> PersonQuota:
    usage = quota_state(user_id=user.id)
    form = QuotaChangeForm(
        initial={"user_id": user.id, "version": usage.version, "email": email},
        auto_id=f"id_{user.id[:12]}_%s",  # two people may share an address: one form each, distinct ids
    )
    return PersonQuota(
        user_id=user.id, email=user.email, name=user.display_name, department=user.department, usage=usage, form=form
    )


def _change(request):
    form = QuotaChangeForm(request.POST)
    back = reverse("admin:fxfer_quota")
    if not form.is_valid():
        errors = " ".join(e for errs in form.errors.values() for e in errs)
        messages.error(request, _("Quota not changed: %(errors)s") % {"errors": errors})
        return redirect(back + _query(request.POST.get("email", "")))
    data = form.cleaned_data
    try:
        changed = quota_set(
            officer_id=str(request.user.pk),
            user_id=data["user_id"],
            quota_bytes=form.quota_bytes(),
            version=data["version"],
            reason=data["reason"],
            ip=request.META.get("REMOTE_ADDR"),
            user_agent=request.META.get("HTTP_USER_AGENT"),
        )
    except TransferError as error:
        messages.error(request, _("Quota not changed: %(errors)s") % {"errors": error.message})
    else:
        if changed.override is None:
            done = _("The allowance is now %(size)s (the site default).")
        else:
            done = _("The allowance is now %(size)s.")
        messages.success(request, done % {"size": bytes_text(changed.new)})
    return redirect(back + _query(data["email"]))


def _query(email: str) -> str:
    return "?" + urlencode({"email": email}) if email else ""


def _default() -> int:
    return settings.FXFER_USER_QUOTA_BYTES
