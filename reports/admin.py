"""The compliance admin: Django's AdminSite with our own pages over DynamoDB (no ORM model is registered).

Who gets in: signed-in people with the compliance role. A signed-in employee gets a 403 page and an
"admin.refused" audit event; someone not signed in goes to SAML sign-in (there are no passwords).
"""

import json
from datetime import UTC, datetime, timedelta
from functools import update_wrapper
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin, messages
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.errors import AccountError
from reports.errors import AuditError

# The pages' selectors, reports, charts and CSV exports are imported by the views that use them: any request loads
# every URL module (Django's reverse() does), and a cold start that shows no admin page need not load them.

# Django's own admin URLs we keep: the rest (password change, autocomplete, "view on site") need an ORM.
_KEPT_ADMIN_URLS = {"index", "login", "logout", "jsi18n"}


def audit_record(**event):
    """reports.services.audit_record, imported on first use: Django imports this module (the admin site) when it
    starts, and a cold start whose first request audits nothing (a health check) need not load the audit tables."""
    from reports.services import audit_record as record

    return record(**event)


def _client(request) -> dict:
    return {"ip": request.META.get("REMOTE_ADDR"), "user_agent": request.META.get("HTTP_USER_AGENT")}


class ComplianceAdminSite(admin.AdminSite):
    site_header = _("fxfer compliance")
    site_title = _("fxfer compliance")
    index_title = _("Dashboard")
    index_template = "admin/fxfer/dashboard.html"
    enable_nav_sidebar = False

    # --- Access -------------------------------------------------------------------------------------------

    def has_permission(self, request) -> bool:
        user = request.user
        return bool(user.is_authenticated and user.is_active and getattr(user, "is_compliance", False))

    def admin_view(self, view, cacheable=False):
        inner = super().admin_view(view, cacheable)

        def guarded(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return self._to_signin(request.get_full_path())
            if not self.has_permission(request):
                return self._refuse(request)
            return inner(request, *args, **kwargs)

        return never_cache(update_wrapper(guarded, inner))

    def login(self, request, extra_context=None):
        """No password form: anonymous people sign in through the IdP, signed-in ones are let in or refused."""
        target = request.GET.get("next", "")
        if not url_has_allowed_host_and_scheme(target, allowed_hosts=None) or not target.startswith("/admin/"):
            target = reverse("admin:index", current_app=self.name)
        if not request.user.is_authenticated:
            return self._to_signin(target)
        if not self.has_permission(request):
            return self._refuse(request)
        return HttpResponseRedirect(target)

    def logout(self, request, extra_context=None):
        return redirect("accounts:logout")  # SAML sign-out (it asks to confirm, then ends the session)

    def get_log_entries(self, request):
        return []  # LogEntry is an ORM model; this admin's record is the audit trail

    def _to_signin(self, next_path: str):
        return HttpResponseRedirect(f"{reverse('accounts:login')}?{urlencode({'next': next_path})}")

    def _refuse(self, request):
        audit_record(
            action="admin.refused",
            actor=f"user:{request.user.pk}",
            subject="admin",
            outcome="refused",
            details={"path": request.path[:300], "method": request.method, "reason": "not_compliance"},
            **_client(request),
        )
        return TemplateResponse(request, "admin/fxfer/refused.html", {}, status=403)

    # --- URLs ---------------------------------------------------------------------------------------------

    def get_urls(self):
        view = self.admin_view
        ours = [
            path("transfers/", view(self.transfers_view), name="fxfer_transfers"),
            path("transfers/<str:transfer_id>/", view(self.transfer_view), name="fxfer_transfer"),
            path(
                "transfers/<str:transfer_id>/<str:action>/",
                view(require_POST(self.transfer_action_view)),
                name="fxfer_transfer_action",
            ),
            path(
                "transfers/<str:transfer_id>/files/<str:file_id>/release-scan/",
                view(require_POST(self.scan_release_view)),
                name="fxfer_scan_release",
            ),
            path("audit/", view(self.audit_view), name="fxfer_audit"),
            path("audit/export.csv", view(self.audit_csv_view), name="fxfer_audit_csv"),
            path("audit/verify/", view(self.verify_view), name="fxfer_verify"),
            path("reports/daily/", view(self.daily_view), name="fxfer_daily"),
            path("reports/daily.csv", view(self.daily_csv_view), name="fxfer_daily_csv"),
            path("reports/monthly/", view(self.monthly_view), name="fxfer_monthly"),
            path("reports/monthly.csv", view(self.monthly_csv_view), name="fxfer_monthly_csv"),
            path("quotas/", view(self.quota_view), name="fxfer_quota"),
            path("approvals/", view(self.approvals_view), name="fxfer_approvals"),
            path("operations/", view(self.operations_view), name="fxfer_operations"),
            path("people/", view(self.people_view), name="fxfer_people"),
            path("people/<str:user_id>/sign-out/", view(require_POST(self.people_signout_view)), name="fxfer_signout"),
        ]
        kept = [url for url in super().get_urls() if getattr(url, "name", None) in _KEPT_ADMIN_URLS]
        return ours + kept

    def _render(self, request, template: str, title: str, context: dict, status: int = 200):
        request.current_app = self.name
        return TemplateResponse(
            request, template, {**self.each_context(request), "title": title, **context}, status=status
        )

    # --- Dashboard ----------------------------------------------------------------------------------------

    def index(self, request, extra_context=None):
        from reports import aggregation, selectors
        from reports.chart import daily_chart
        from reports.summary import FIGURE_LABELS, day_anomalies

        now = datetime.now(UTC)
        today = selectors.today(now)
        live = aggregation.today_figures(now)  # the running totals and the events not linked yet, not the day
        days = selectors.days_figures([today - timedelta(days=n) for n in range(30, 0, -1)])
        yesterday = days[-1]
        return self._render(
            request,
            self.index_template,
            _("Dashboard"),
            {
                "today": today,
                "today_rows": _figure_rows(live),
                "day_rows": [(d, [(n, int(d.figures.get(n, 0))) for n in FIGURE_LABELS]) for d in days],
                "totals": _figure_rows(_sum(days)),
                "chart": daily_chart(days),
                "failed_days": [d for d in days if d.status == "failed"],
                "missing_days": [d for d in days if d.status == "missing"],
                "yesterday": yesterday,
                "anomalies": day_anomalies(day=yesterday.day, figures=yesterday.figures)
                if yesterday.status == "ok"
                else (),
                "figure_labels": FIGURE_LABELS,
            },
        )

    # --- Transfers ----------------------------------------------------------------------------------------

    def transfers_view(self, request):
        from reports import selectors
        from reports.forms import TransferSearchForm

        form = TransferSearchForm(request.GET or None)
        results, error, status = None, None, 200
        if form.is_bound and form.is_valid():
            try:
                results = selectors.transfer_search(
                    field=form.cleaned_data["field"],
                    value=form.cleaned_data["value"],
                    first_day=form.cleaned_data["first_day"],
                    last_day=form.cleaned_data["last_day"],
                    status=form.cleaned_data["status"],
                    kind=form.cleaned_data["kind"],
                    cursor=request.GET.get("cursor"),
                )
            except AuditError as exc:
                error, status = str(exc), 503 if exc.code == "unavailable" else 200
        return self._render(
            request,
            "admin/fxfer/transfers.html",
            _("Transfers and requests"),
            {"form": form, "results": results, "error": error, "next_query": _next_query(request, results)},
            status=status,
        )

    def transfer_view(self, request, transfer_id: str):
        from reports import selectors
        from reports.actions import ACTIONS

        found = selectors.transfer_file(transfer_id=transfer_id)
        if found is None:
            raise Http404("There is no such transfer.")
        actions = [
            (action, action.form(prefix=action.key))
            for action in ACTIONS.values()
            if action.applies_to(status=found.transfer.status, held=found.held)
        ]
        noun = _("Transfer") if found.transfer.kind == "send" else found.transfer.kind_label
        return self._render(
            request,
            "admin/fxfer/transfer.html",
            f"{noun} {transfer_id}",
            {"t": found, "actions": actions},
        )

    def transfer_action_view(self, request, transfer_id: str, action: str):
        from reports.actions import ACTIONS, Officer

        chosen = ACTIONS.get(action)
        if chosen is None:
            raise Http404("No such action.")
        form = chosen.form(request.POST, prefix=chosen.key)
        if not form.is_valid():
            messages.error(request, f"{chosen.label}: " + " ".join(e for errs in form.errors.values() for e in errs))
            return redirect("admin:fxfer_transfer", transfer_id=transfer_id)
        officer = Officer(user_id=str(request.user.pk), **_client(request))
        try:
            done = chosen.run(officer=officer, transfer_id=transfer_id, now=datetime.now(UTC), **form.cleaned_data)
        except AuditError as exc:
            if exc.code == "not_found":
                raise Http404("There is no such transfer.") from None
            messages.error(request, f"{chosen.label}: {exc}")
        else:
            messages.success(request, done.message)
        return redirect("admin:fxfer_transfer", transfer_id=transfer_id)

    def quota_view(self, request):
        from reports.quotas import quota_view

        return quota_view(self, request)

    def operations_view(self, request):
        from reports.operations import operations_view

        return operations_view(self, request)

    def approvals_view(self, request):
        """Every supervisor approval still awaited, oldest due first (issue 16)."""
        from transfers.errors import TransferError
        from transfers.services.approvals import approvals_pending

        try:
            rows, error, status = approvals_pending(), None, 200
        except TransferError as exc:  # AWS did not answer: say so, never "no approval is waiting"
            rows, error, status = None, exc.message, 503
        context = {"rows": rows, "error": error}
        return self._render(request, "admin/fxfer/approvals.html", _("Pending approvals"), context, status=status)

    def scan_release_view(self, request, transfer_id: str, file_id: str):
        """Compliance releases a file the malware scan blocks, with a reason (reports.actions)."""
        from reports.actions import Officer, ReasonForm, file_scan_release_by_compliance

        form = ReasonForm(request.POST)
        if not form.is_valid():
            messages.error(request, " ".join(e for errs in form.errors.values() for e in errs))
            return redirect("admin:fxfer_transfer", transfer_id=transfer_id)
        officer = Officer(user_id=str(request.user.pk), **_client(request))
        try:
            done = file_scan_release_by_compliance(
                officer=officer, transfer_id=transfer_id, file_id=file_id, now=datetime.now(UTC), **form.cleaned_data
            )
        except AuditError as exc:
            if exc.code == "not_found":
                raise Http404("There is no such file.") from None
            messages.error(request, str(exc))
        else:
            messages.success(request, done.message)
        return redirect("admin:fxfer_transfer", transfer_id=transfer_id)

    # --- Audit log ----------------------------------------------------------------------------------------

    def audit_view(self, request):
        from reports import selectors
        from reports.forms import AuditFilterForm

        form = AuditFilterForm(request.GET)
        page, error = None, None
        if form.is_valid():
            try:
                page = selectors.audit_log_page(**form.cleaned_data, cursor=request.GET.get("cursor"))
            except AuditError as exc:
                error = str(exc)
        export = reverse("admin:fxfer_audit_csv") + "?" + request.GET.urlencode() if form.is_valid() else None
        return self._render(
            request,
            "admin/fxfer/audit.html",
            _("Audit log"),
            {"form": form, "page": page, "error": error, "export_url": export}
            | {"next_query": _next_query(request, page)},
        )

    def audit_csv_view(self, request):
        from reports import selectors
        from reports.csvexport import csv_response
        from reports.forms import AuditFilterForm

        form = AuditFilterForm(request.GET)
        if not form.is_valid():
            return self._render(
                request, "admin/fxfer/audit.html", _("Audit log"), {"form": form, "page": None}, status=400
            )
        filters = form.cleaned_data
        audit_record(
            action="audit.exported",
            actor=f"user:{request.user.pk}",
            subject="audit",
            details={k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in filters.items()},
            **_client(request),
        )
        rows = (
            [
                timezone.localtime(r.at).isoformat(),
                r.seq if r.seq is not None else "",
                r.actor,
                r.actor_label,
                r.action,
                r.outcome,
                r.subject,
                r.ip or "",
                r.user_agent or "",
                json.dumps(r.details, ensure_ascii=False, sort_keys=True) if r.details else "",
                r.count if r.count is not None else "",
                r.event_id,
            ]
            for r in selectors.audit_log_rows(**filters)
        )
        header = ["time", "seq", "actor", "actor address", "action", "outcome", "subject", "ip", "user agent"]
        name = f"fxfer-audit-{filters['first_day'].isoformat()}-{filters['last_day'].isoformat()}.csv"
        return csv_response(filename=name, header=[*header, "details", "count", "event id"], rows=rows)

    def verify_view(self, request):
        from reports import chain
        from reports.forms import VerifyForm

        form = VerifyForm(request.POST if request.method == "POST" else None)
        result = None
        if request.method == "POST" and form.is_valid():
            result = chain.audit_chain_verify(
                from_seq=form.cleaned_data["from_seq"], limit=settings.FXFER_AUDIT_VERIFY_WEB_EVENTS
            )
            audit_record(
                action="audit.verified",
                actor=f"user:{request.user.pk}",
                subject="audit",
                outcome="ok" if result.ok else "failed",
                details={
                    "first_seq": result.first_seq,
                    "last_seq": result.last_seq,
                    "break": result.first_break.kind if result.first_break else None,
                },
                **_client(request),
            )
        return self._render(
            request,
            "admin/fxfer/verify.html",
            _("Audit chain check"),
            {"form": form, "result": result, "retention_days": settings.FXFER_AUDIT_RETENTION_DAYS},
        )

    # --- People: sessions ----------------------------------------------------------------------------------

    def people_view(self, request):
        return self._render(
            request,
            "admin/fxfer/people.html",
            _("People and sessions"),
            _people_context(request, request.GET.get("email")),
        )

    def people_signout_view(self, request, user_id: str):
        from accounts.forms import PersonSearchForm

        email = request.POST.get("email", "")
        try:
            from accounts.services import Client, user_sessions_end  # this page only: not at every cold start

            done = user_sessions_end(
                user_id=user_id, officer_id=str(request.user.pk), client=Client(**_client(request))
            )
        except AccountError as exc:
            if exc.code == "not_found":
                raise Http404("There is no such person.") from None
            # AWS is not answering: no second look-up for the page, just the truth and the search form.
            context = {"form": PersonSearchForm({"email": email}), "people": None}
            context["error"] = "AWS did not answer. Nothing was lost; try again."
            return self._render(request, "admin/fxfer/people.html", _("People and sessions"), context, status=503)
        messages.success(request, f"Signed out everywhere: {done.ended} live session(s) ended.")
        return redirect(f"{reverse('admin:fxfer_people')}?{urlencode({'email': email})}")

    # --- Reports ------------------------------------------------------------------------------------------

    def daily_view(self, request):
        from reports import selectors
        from reports.forms import DayForm
        from reports.summary import FIGURE_LABELS

        form = DayForm(request.GET)
        day = form.cleaned_data["day"] if form.is_valid() else selectors.today() - timedelta(days=1)
        report = selectors.day_report(day=day)
        return self._render(
            request,
            "admin/fxfer/daily.html",
            _("Daily report %(day)s") % {"day": day.isoformat()},
            {
                "form": form,
                "report": report,
                "rows": _figure_rows(report.day.figures),
                "labels": FIGURE_LABELS,
                "departments": [(name, [int(f.get(k, 0)) for k in FIGURE_LABELS]) for name, f in report.departments],
                "previous": day - timedelta(days=1),
                "next": day + timedelta(days=1),
            },
        )

    def daily_csv_view(self, request):
        from reports import selectors
        from reports.csvexport import csv_response
        from reports.forms import DayForm
        from reports.summary import FIGURE_LABELS

        form = DayForm(request.GET)
        day = form.cleaned_data["day"] if form.is_valid() else selectors.today() - timedelta(days=1)
        report = selectors.day_report(day=day)
        rows = [["(all)", report.day.status, *(report.day.figures.get(k, 0) for k in FIGURE_LABELS)]]
        rows += [[name, "ok", *(f.get(k, 0) for k in FIGURE_LABELS)] for name, f in report.departments]
        return csv_response(
            filename=f"fxfer-daily-{day.isoformat()}.csv",
            header=["department", "status", *FIGURE_LABELS.values()],
            rows=rows,
        )

    def monthly_view(self, request):
        from reports import selectors
        from reports.forms import MonthForm
        from reports.summary import FIGURE_LABELS

        form = MonthForm(request.GET)
        month = form.cleaned_data["month"] if form.is_valid() else _last_month_day()
        report = selectors.month_report(month=month)
        return self._render(
            request,
            "admin/fxfer/monthly.html",
            _("Monthly report %(month)s") % {"month": f"{month:%Y-%m}"},
            {
                "form": form,
                "report": report,
                "labels": FIGURE_LABELS,
                "days": [(d, [int(d.figures.get(k, 0)) for k in FIGURE_LABELS]) for d in report.days],
                "totals": [int(report.totals.get(k, 0)) for k in FIGURE_LABELS],
                "departments": [(name, [int(f.get(k, 0)) for k in FIGURE_LABELS]) for name, f in report.departments],
                "month_value": f"{month:%Y-%m}",
            },
        )

    def monthly_csv_view(self, request):
        from reports import selectors
        from reports.csvexport import csv_response
        from reports.forms import MonthForm
        from reports.summary import FIGURE_LABELS

        form = MonthForm(request.GET)
        month = form.cleaned_data["month"] if form.is_valid() else _last_month_day()
        report = selectors.month_report(month=month)
        rows = [[d.day.isoformat(), d.status, *(d.figures.get(k, 0) for k in FIGURE_LABELS)] for d in report.days]
        rows.append(["total", "", *(report.totals.get(k, 0) for k in FIGURE_LABELS)])
        rows += [[f"department: {name}", "", *(f.get(k, 0) for k in FIGURE_LABELS)] for name, f in report.departments]
        return csv_response(
            filename=f"fxfer-monthly-{month:%Y-%m}.csv", header=["day", "status", *FIGURE_LABELS.values()], rows=rows
        )


def _people_context(request, email: str | None) -> dict:
    from accounts.forms import PersonSearchForm
    from accounts.selectors import people_by_email

    form = PersonSearchForm({"email": email} if email else None)
    people = people_by_email(email=form.cleaned_data["email"]) if form.is_bound and form.is_valid() else None
    return {"form": form, "people": people}


def _figure_rows(figures: dict) -> list[tuple[str, str, int]]:
    from reports.summary import FIGURE_LABELS

    return [(name, label, int(figures.get(name, 0))) for name, label in FIGURE_LABELS.items()]


def _sum(days) -> dict:
    from reports.summary import FIGURE_LABELS

    totals = {name: 0 for name in FIGURE_LABELS}
    domains: set[str] = set()
    for day in days:
        if day.status == "ok":
            for name in FIGURE_LABELS:
                totals[name] += int(day.figures.get(name, 0))
            domains.update(day.figures.get("domains", ()))
    totals["external_domains"] = len(domains)
    return totals


def _next_query(request, page) -> str | None:
    if not page or not page.next_cursor:
        return None
    query = request.GET.copy()
    query["cursor"] = page.next_cursor
    return query.urlencode()


def _last_month_day():
    from reports import selectors

    return (selectors.today() - timedelta(days=1)).replace(day=1)
