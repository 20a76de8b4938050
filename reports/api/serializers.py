"""Report jobs in the API: the request a manager sends and the job they get back."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers
from rest_framework.reverse import reverse

from reports.models import JobStatus, ReportJob
from reports.periods import FIRST_REPORT_DATE, LAST_REPORT_DATE, PeriodRefused, period_check
from reports.snapshots import calendar_resolve
from servicedesk.core.errors import ApplicationError


class ReportRequestSerializer(serializers.Serializer):
    """A period of local dates [start, end) of the calendar, evaluated at ``as_of`` (default: now)."""

    start = serializers.DateField(help_text=_("First local date of the period."))
    end = serializers.DateField(help_text=_("Local date after the last day of the period (exclusive)."))
    as_of = serializers.DateTimeField(required=False, help_text=_("The instant the figures are evaluated at."))
    calendar = serializers.SlugField(
        required=False, allow_blank=True, help_text=_("Calendar identifier; the default calendar when left out.")
    )

    def validate_calendar(self, value: str) -> Any:
        try:
            return calendar_resolve(value or None)
        except ApplicationError as exc:
            raise serializers.ValidationError(exc.message) from exc

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "calendar" not in attrs:
            try:
                attrs["calendar"] = calendar_resolve(None)
            except ApplicationError as exc:
                raise serializers.ValidationError({"calendar": [exc.message]}) from exc
        try:
            period_check(start=attrs["start"], end=attrs["end"], time_zone=attrs["calendar"].time_zone)
        except PeriodRefused as exc:
            raise serializers.ValidationError({exc.field or "end": [exc.message]}) from exc
        attrs.setdefault("as_of", timezone.now())
        if not FIRST_REPORT_DATE.year <= attrs["as_of"].year <= LAST_REPORT_DATE.year:
            raise serializers.ValidationError(
                {
                    "as_of": [
                        _("Choose an instant between %(first)s and %(last)s.")
                        % {"first": FIRST_REPORT_DATE.isoformat(), "last": LAST_REPORT_DATE.isoformat()}
                    ]
                }
            )
        return attrs


class ReportJobSerializer(serializers.ModelSerializer):
    """A report job: its progress, and its figures (docs/metrics.md#report-json) once done."""

    status = serializers.ChoiceField(choices=JobStatus.choices, read_only=True)
    calendar: serializers.SlugRelatedField = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    url = serializers.SerializerMethodField()
    result = serializers.SerializerMethodField()

    class Meta:
        model = ReportJob
        fields = [
            "id",
            "status",
            "progress",
            "url",
            "start",
            "end",
            "as_of",
            "calendar",
            "error",
            "created_at",
            "finished_at",
            "result",
        ]
        read_only_fields = fields

    def get_url(self, job: ReportJob) -> str:
        return reverse("reports_api:job", args=[job.pk], request=self.context.get("request"))

    def get_result(self, job: ReportJob) -> dict[str, Any] | None:
        """The report object when the job is done, else null."""
        return job.result if job.status == JobStatus.DONE else None


class ReportJobSummarySerializer(ReportJobSerializer):
    """A job in the list, without its figures."""

    class Meta(ReportJobSerializer.Meta):
        fields = [f for f in ReportJobSerializer.Meta.fields if f != "result"]
        read_only_fields = fields
