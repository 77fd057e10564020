"""Filter forms of the compliance admin (GET query strings)."""

from datetime import date, timedelta

from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from reports.selectors import KINDS, MAX_RANGE_DAYS, SEARCH_FIELD_LABELS, STATUS_LABELS, STATUSES, today


class DateRangeForm(forms.Form):
    first_day = forms.DateField(
        label=pgettext_lazy("date range", "From"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    last_day = forms.DateField(
        label=pgettext_lazy("date range", "To"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    default_days = 7

    def clean(self):
        data = super().clean()
        last = data.get("last_day") or today()
        first = data.get("first_day") or last - timedelta(days=self.default_days - 1)
        if last < first:
            raise forms.ValidationError(_("The end of the date range is before its start."))
        if (last - first).days >= MAX_RANGE_DAYS:
            raise forms.ValidationError(_("Choose at most %(days)d days.") % {"days": MAX_RANGE_DAYS})
        data["first_day"], data["last_day"] = first, last
        return data


class AuditFilterForm(DateRangeForm):
    actor = forms.RegexField(
        label=_("Actor"),
        regex=r"^(user|guest|job):[A-Za-z0-9_.:-]{1,128}$|^(system|anonymous)$",
        required=False,
        help_text=_('As shown in the log, e.g. "user:…" or "guest:…" (click an actor to filter by it).'),
        error_messages={"invalid": 'An actor looks like "user:…", "guest:…", "job:…", "system" or "anonymous".'},
    )
    action = forms.RegexField(
        label=_("Action"),
        regex=r"^[a-z_]+(\.[a-z_]+)*$",
        max_length=64,
        required=False,
        error_messages={"invalid": 'An action looks like "transfer.created".'},
    )


class TransferSearchForm(DateRangeForm):
    default_days = 30
    field = forms.ChoiceField(
        label=_("Search by"),
        choices=[("", _("— all transfers of the dates —")), *SEARCH_FIELD_LABELS.items()],
        required=False,
    )
    value = forms.CharField(label=_("Value"), max_length=320, required=False)
    status = forms.ChoiceField(
        label=_("Status"),
        choices=[("", _("any"))]
        + [(s, _("ready (request: open)") if s == "ready" else STATUS_LABELS[s]) for s in STATUSES],
        required=False,
    )
    kind = forms.ChoiceField(label=_("Kind"), choices=[("", _("any")), *KINDS.items()], required=False)

    def clean(self):
        data = super().clean()
        if data.get("field") and not data.get("value", "").strip():
            self.add_error("value", _("Enter what to search for."))
        if data.get("value", "").strip() and not data.get("field"):
            self.add_error("field", _("Choose what the value is."))
        return data


class DayForm(forms.Form):
    day = forms.DateField(label=_("Day"), required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean_day(self):
        return self.cleaned_data.get("day") or today() - timedelta(days=1)


class MonthForm(forms.Form):
    month = forms.RegexField(
        label=_("Month"),
        regex=r"^\d{4}-(0[1-9]|1[0-2])$",
        required=False,
        widget=forms.TextInput(attrs={"type": "month"}),
    )

    def clean_month(self) -> date:
        raw = self.cleaned_data.get("month")
        if not raw:
            return (today() - timedelta(days=1)).replace(day=1)
        return date.fromisoformat(f"{raw}-01")


class VerifyForm(forms.Form):
    from_seq = forms.IntegerField(label=_("From event (seq)"), min_value=1, required=False)
