"""``/api/v1/reports/``: managers request a report for any period and follow the job to its figures."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from reports.api.serializers import ReportJobSerializer, ReportJobSummarySerializer, ReportRequestSerializer
from reports.models import ReportJob
from reports.permissions import CanViewReports
from reports.snapshots import report_job_create


class ReportJobListView(generics.ListAPIView):
    """Report jobs, newest first (``GET``); ``POST`` queues a new one and answers 202."""

    permission_classes = [IsAuthenticated, CanViewReports]
    serializer_class = ReportJobSummarySerializer
    queryset = ReportJob.objects.select_related("calendar").order_by("-created_at", "-id")

    @extend_schema(request=ReportRequestSerializer, responses={202: ReportJobSerializer})
    def post(self, request: Request) -> Response:
        data = ReportRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = report_job_create(user=request.user, **data.validated_data)
        job.refresh_from_db()
        body = ReportJobSerializer(job, context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})


class ReportJobDetailView(generics.RetrieveAPIView):
    """One report job: ``queued``, ``running`` (progress 0-100), ``done`` with its result, or ``failed``."""

    permission_classes = [IsAuthenticated, CanViewReports]
    serializer_class = ReportJobSerializer
    queryset = ReportJob.objects.select_related("calendar")
