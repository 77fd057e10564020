"""Supervisor approval in the portal (employees, signed in through the IdP): the approvals waiting for me and my
delegation for an absence; one transfer's approval page, where its approver approves or rejects it."""

from datetime import datetime, time, timedelta

from django import forms
from django.contrib import messages
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from transfers.errors import TransferError
from transfers.services import approvals
from transfers.views.common import client, sender_page


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[(approvals.APPROVE, "approve"), (approvals.REJECT, "reject")])
    comment = forms.CharField(
        required=False, max_length=approvals.MAX_COMMENT, widget=forms.Textarea, label=gettext_lazy("Comment")
    )


class DelegationForm(forms.Form):
    delegate_email = forms.EmailField(label=gettext_lazy("Delegate's e-mail address"))
    first_day = forms.DateField(
        label=pgettext_lazy("date range", "From"), widget=forms.DateInput(attrs={"type": "date"})
    )
    last_day = forms.DateField(label=gettext_lazy("Until (inclusive)"), widget=forms.DateInput(attrs={"type": "date"}))

    def period(self) -> tuple[datetime, datetime]:
        """The days as local midnights: from the first day's start to the end of the last day."""
        zone = timezone.get_current_timezone()
        start = datetime.combine(self.cleaned_data["first_day"], time.min, zone)
        end = datetime.combine(self.cleaned_data["last_day"] + timedelta(days=1), time.min, zone)
        return start, end


def _home(request, form: DelegationForm | None = None, status: int = 200):
    context = {
        "waiting": approvals.approvals_waiting_for(person=request.user),
        "delegation": approvals.delegation_get(approver_email=request.user.email),
        "form": form or DelegationForm(),
    }
    return render(request, "transfers/approvals.html", context, status=status)


@sender_page
@never_cache
@require_http_methods(["GET", "HEAD"])
def approval_list(request):
    """The approvals I may decide now, and my delegation."""
    return _home(request)


@sender_page
@require_POST
def delegation(request):
    """Set my delegate for a period, or (`end`) end my delegation now."""
    if "end" in request.POST:
        approvals.delegation_end(approver=request.user, **client(request))
        messages.success(request, _("Your delegation has ended."))
        return redirect("transfers:approvals")
    form = DelegationForm(request.POST)
    if not form.is_valid():
        return _home(request, form, status=400)
    start, end = form.period()
    approvals.delegation_set(
        approver=request.user,
        delegate_email=form.cleaned_data["delegate_email"],
        starts_at=start,
        ends_at=end,
        **client(request),
    )
    messages.success(request, _("Your delegate is set."))
    return redirect("transfers:approvals")


@sender_page
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def approval_detail(request, transfer_id: str):
    """GET: the transfer as its approver sees it. POST: approve, or reject with a comment."""
    if request.method == "POST":
        form = DecisionForm(request.POST)
        if not form.is_valid():
            raise TransferError("invalid")
        decided = approvals.approval_decide(
            person=request.user, transfer_id=transfer_id, **form.cleaned_data, **client(request)
        )
        messages.success(request, _decided_text(decided))
        return redirect("transfers:approval", transfer_id)
    page = approvals.approval_page(person=request.user, transfer_id=transfer_id)
    return render(request, "transfers/approval.html", {"page": page, "form": DecisionForm()})


def _decided_text(decided: approvals.ApprovalDecided) -> str:
    if decided.repeated:  # a double click, or a retry of a decision whose answer was lost: it counts once
        if decided.decision == approvals.REJECT:
            return _("You had already rejected this transfer.")
        return _("You had already approved this transfer.")
    if decided.decision == approvals.REJECT:
        return _("You rejected the transfer. Nothing is sent; its files are deleted.")
    if decided.released:
        return _("You approved the transfer. Its recipients have been mailed.")
    return _("You approved the transfer. Its recipients are mailed once its files are ready.")


@sender_page
@require_POST
def approval_download(request, transfer_id: str, file_id: str):
    """The approver (or their delegate) inspects one clean file: a short-lived presigned GET (303)."""
    issued = approvals.approval_file_download_url(
        person=request.user, transfer_id=transfer_id, file_id=file_id, **client(request)
    )
    return HttpResponseRedirect(issued.url, status=303)
