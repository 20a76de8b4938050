"""Business calendars and SLA policies in the Django admin: windows, holidays and targets inline, holiday seeding."""

import re
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _

from servicedesk.sla.models import (
    MINUTES_PER_DAY,
    BusinessCalendar,
    EscalationRule,
    Holiday,
    OpeningWindow,
    SlaPolicy,
    SlaTarget,
    minute_label,
)
from servicedesk.sla.services import UnknownHolidayRegion, calendar_holidays_seed

_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")


def _minute_of_day(value: str) -> int:
    match = _CLOCK.match(value.strip())
    if not match:
        raise forms.ValidationError(_("Enter a time as HH:MM, from 00:00 to 24:00."), code="clock")
    hours, minutes = int(match.group(1)), int(match.group(2))
    minute = hours * 60 + minutes
    if minutes > 59 or minute > MINUTES_PER_DAY:
        raise forms.ValidationError(_("Enter a time as HH:MM, from 00:00 to 24:00."), code="clock")
    return minute


class OpeningWindowForm(forms.ModelForm):
    """Opening hours typed as HH:MM; 24:00 closes at the end of the day."""

    opens = forms.CharField(label=_("opens"), max_length=5, help_text=_("HH:MM"))
    closes = forms.CharField(label=_("closes"), max_length=5, help_text=_("HH:MM, up to 24:00"))

    class Meta:
        model = OpeningWindow
        fields = ("weekday",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["opens"] = minute_label(self.instance.start_minute)
            self.initial["closes"] = minute_label(self.instance.end_minute)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        opens, closes = cleaned.get("opens"), cleaned.get("closes")
        if opens is None or closes is None:
            return cleaned
        start, end = _minute_of_day(opens), _minute_of_day(closes)
        if end <= start:
            raise forms.ValidationError(_("A window must close after it opens."), code="order")
        self.instance.start_minute, self.instance.end_minute = start, end
        return cleaned


class OpeningWindowInline(admin.TabularInline):
    model = OpeningWindow
    form = OpeningWindowForm
    extra = 0


class HolidayInline(admin.TabularInline):
    model = Holiday
    extra = 0
    fields = ("date", "name")


class HolidaySeedForm(forms.Form):
    country = forms.CharField(label=_("country"), max_length=3, help_text=_("ISO 3166 code, e.g. IE"))
    subdivision = forms.CharField(label=_("subdivision"), max_length=10, required=False)
    first_year = forms.IntegerField(label=_("first year"), min_value=1900, max_value=2200)
    last_year = forms.IntegerField(label=_("last year"), min_value=1900, max_value=2200)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        first, last = cleaned.get("first_year"), cleaned.get("last_year")
        if first is not None and last is not None and not 0 <= last - first < 50:
            raise forms.ValidationError(_("Choose at most 50 years, the last not before the first."), code="years")
        return cleaned


@admin.register(BusinessCalendar)
class BusinessCalendarAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "time_zone", "is_default")
    search_fields = ("slug", "name")
    inlines = (OpeningWindowInline, HolidayInline)
    actions = ("seed_holidays",)

    @admin.action(description=_("Seed holidays"), permissions=("change",))
    def seed_holidays(self, request: HttpRequest, queryset: QuerySet[BusinessCalendar]) -> HttpResponse | None:
        form = HolidaySeedForm(request.POST if "seed" in request.POST else None)
        if form.is_valid():
            years = range(form.cleaned_data["first_year"], form.cleaned_data["last_year"] + 1)
            try:
                for calendar in queryset:
                    added = calendar_holidays_seed(
                        calendar=calendar,
                        country=form.cleaned_data["country"],
                        years=years,
                        subdivision=form.cleaned_data["subdivision"] or None,
                    )
                    self.message_user(
                        request,
                        _("%(calendar)s: %(count)d holidays added.") % {"calendar": calendar, "count": added},
                    )
            except UnknownHolidayRegion as exc:
                self.message_user(request, exc.message, level=messages.ERROR)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": _("Seed holidays"),
            "opts": self.model._meta,
            "form": form,
            "calendars": queryset,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/sla/seed_holidays.html", context)


class SlaTargetInline(admin.TabularInline):
    model = SlaTarget
    extra = 0
    fields = ("priority", "first_reply_minutes", "resolution_minutes", "hours")


class EscalationRuleInline(admin.TabularInline):
    """Escalations: at a threshold, raise the priority, move the queue or notify a manager (once per target)."""

    model = EscalationRule
    extra = 0
    fields = ("order", "threshold", "target_kind", "action", "priority", "queue", "user")


@admin.register(SlaPolicy)
class SlaPolicyAdmin(admin.ModelAdmin):
    list_display = ("rank", "name", "slug", "calendar", "match", "warning_percent")
    list_display_links = ("name",)
    list_select_related = ("calendar",)
    search_fields = ("slug", "name")
    ordering = ("rank",)
    inlines = (SlaTargetInline, EscalationRuleInline)
