import django_filters
from django.db import InterfaceError, OperationalError
from django.db.models import Prefetch
from django.http import JsonResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response

from leadmarket.api.access import PublicAPIView, StaffAPIView
from leadmarket.api.client import client_ip
from leadmarket.api.envelope import failure_body, failure_response, ok, success_response
from leadmarket.api.exceptions import database_unavailable
from leadmarket.api.inputs import validated
from leadmarket.api.pagination import PageNumberPagination
from leadmarket.api.schema import ERROR

from .. import services
from ..models import Portal, PortalKey, Reception, ReceptionOutcome
from ..webhooks import handle_webhook
from .serializers import (
    PortalCreateInput,
    PortalCredentialsSerializer,
    PortalPreviewInput,
    PortalRotateKeyInput,
    PortalSerializer,
    PortalUpdateInput,
    PreviewLeadSerializer,
    ReceptionSerializer,
    ReplayResultSerializer,
    WebhookAcceptedSerializer,
)


class AlwaysJson(BaseContentNegotiation):
    """Portals send whatever Accept header; the answer is always the JSON envelope."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class WebhookView(PublicAPIView):
    """POST /api/webhooks/<portal_code>: the entry of every lead.

    A POST is answered without DRF's request wrapper, content negotiation and renderer: the
    pipeline reads its own body, authenticates by portal key and counts its own rate, so
    they would only cost time (about a sixth of the webhook's CPU). The answer is the same
    envelope, without DRF's `Allow` and `Vary: Accept` headers (one method, one media
    type). Other methods go through DRF (an enveloped 405; OPTIONS).
    """

    content_negotiation_class = AlwaysJson
    throttle_classes: list = []  # each portal has its own limit, counted after authentication

    def dispatch(self, request, *args, **kwargs):
        if request.method != "POST":
            return super().dispatch(request, *args, **kwargs)
        try:
            return self.post(request, *args, **kwargs)
        except (OperationalError, InterfaceError) as exc:
            return failure_response(**database_unavailable(exc))

    @extend_schema(
        request={"application/json": dict, "application/x-www-form-urlencoded": dict},
        responses={
            201: WebhookAcceptedSerializer,
            200: WebhookAcceptedSerializer,
            400: ERROR,
            401: ERROR,
            404: ERROR,
            413: ERROR,
            415: ERROR,
            429: ERROR,
            503: ERROR,
        },
        tags=["webhooks"],
        auth=[{"portalApiKey": []}],
        summary="Receive a lead from a portal (X-API-Key header; body mapped by the portal's configuration)",
    )
    def post(self, request, portal_code: str) -> JsonResponse:
        outcome = handle_webhook(request, portal_code)
        if outcome.status_code >= 400:
            return failure_response(outcome.status_code, outcome.message, outcome.errors, outcome.headers)
        return success_response(outcome.data, outcome.message, outcome.status_code)


def _portals():
    live = PortalKey.objects.filter(revoked_at__isnull=True).order_by("-created_at", "-id")
    return Portal.objects.prefetch_related(Prefetch("keys", queryset=live, to_attr="live_key_list"))


def _credentials(issued: services.IssuedCredentials) -> dict:
    portal = _portals().get(pk=issued.portal.pk)
    return {"portal": PortalSerializer(portal).data, "api_key": issued.api_key, "signing_secret": issued.signing_secret}


class PortalListView(StaffAPIView):
    required_permissions = {"GET": "portals.view_portal", "POST": "portals.add_portal"}

    @extend_schema(responses={200: PortalSerializer(many=True)}, tags=["admin portals"])
    def get(self, request):
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(_portals().order_by("code", "id"), request, view=self)
        return paginator.get_paginated_response(PortalSerializer(page, many=True).data)

    @extend_schema(
        request=PortalCreateInput, responses={201: PortalCredentialsSerializer, 400: ERROR}, tags=["admin portals"]
    )
    def post(self, request):
        data = validated(PortalCreateInput, request)
        issued = services.create_portal(actor=request.user, data=data, now=timezone.now(), ip=client_ip(request))
        return ok(_credentials(issued), message="Portal created. Store the API key now: it is shown once.", status=201)


class PortalDetailView(StaffAPIView):
    required_permissions = {
        "GET": "portals.view_portal",
        "PUT": "portals.change_portal",
        "PATCH": "portals.change_portal",
    }

    @extend_schema(responses={200: PortalSerializer, 404: ERROR}, tags=["admin portals"])
    def get(self, request, pk: int):
        portal = _portals().filter(pk=pk).first()
        if portal is None:
            raise services.PortalNotFound()
        return ok(PortalSerializer(portal).data)

    @extend_schema(
        request=PortalUpdateInput, responses={200: PortalSerializer, 400: ERROR, 404: ERROR}, tags=["admin portals"]
    )
    def put(self, request, pk: int):
        return self._update(request, pk)

    @extend_schema(
        request=PortalUpdateInput, responses={200: PortalSerializer, 400: ERROR, 404: ERROR}, tags=["admin portals"]
    )
    def patch(self, request, pk: int):
        return self._update(request, pk)

    def _update(self, request, pk: int):
        # Both methods change only the fields sent: a mapping edit must not reset the keys' location.
        data = validated(PortalUpdateInput, request, partial=True)
        portal = services.update_portal(
            actor=request.user, portal_id=pk, data=data, now=timezone.now(), ip=client_ip(request)
        )
        return ok(PortalSerializer(_portals().get(pk=portal.pk)).data, message="Portal updated.")


class PortalRotateKeyView(StaffAPIView):
    required_permissions = {"POST": "portals.rotate_portal_key"}

    @extend_schema(
        request=PortalRotateKeyInput, responses={201: PortalCredentialsSerializer, 404: ERROR}, tags=["admin portals"]
    )
    def post(self, request, pk: int):
        data = validated(PortalRotateKeyInput, request)
        issued = services.rotate_portal_key(
            actor=request.user, portal_id=pk, now=timezone.now(), ip=client_ip(request), **data
        )
        return ok(_credentials(issued), message="New API key issued. Store it now: it is shown once.", status=201)


class PortalPreviewView(StaffAPIView):
    required_permissions = {"POST": "portals.preview_portal_mapping"}

    @extend_schema(
        request=PortalPreviewInput,
        responses={200: PreviewLeadSerializer, 400: ERROR, 404: ERROR},
        tags=["admin portals"],
    )
    def post(self, request, pk: int):
        data = validated(PortalPreviewInput, request)
        mapped = services.preview_mapping(portal_id=pk, payload=data["payload"], spec=data.get("mapping"))
        lead = dict(mapped.values) if mapped.values else None
        if lead and lead.get("consented_at"):
            lead["consented_at"] = lead["consented_at"].isoformat()
        return ok({"valid": not mapped.errors, "lead": lead, "errors": mapped.errors})


class ReceptionFilter(django_filters.FilterSet):
    outcome = django_filters.ChoiceFilter(choices=ReceptionOutcome.choices)
    status = django_filters.NumberFilter(field_name="status_code")
    received_after = django_filters.IsoDateTimeFilter(field_name="received_at", lookup_expr="gte")
    received_before = django_filters.IsoDateTimeFilter(field_name="received_at", lookup_expr="lt")

    class Meta:
        model = Reception
        fields = ("outcome", "status", "received_after", "received_before")


class PortalReceptionListView(StaffAPIView):
    required_permissions = {"GET": "portals.view_reception"}

    @extend_schema(
        parameters=[
            OpenApiParameter("outcome", str, enum=ReceptionOutcome.values),
            OpenApiParameter("status", int, description="HTTP status code answered"),
            OpenApiParameter("received_after", str, description="ISO 8601, inclusive"),
            OpenApiParameter("received_before", str, description="ISO 8601, exclusive"),
        ],
        responses={200: ReceptionSerializer(many=True), 400: ERROR, 404: ERROR},
        tags=["admin portals"],
    )
    def get(self, request, pk: int):
        if not Portal.objects.filter(pk=pk).exists():
            raise services.PortalNotFound()
        filters = ReceptionFilter(request.query_params, queryset=Reception.objects.filter(portal_id=pk))
        if not filters.is_valid():
            raise ValidationError(filters.errors)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(filters.qs.order_by("-received_at", "-id"), request, view=self)
        return paginator.get_paginated_response(ReceptionSerializer(page, many=True).data)


class ReceptionReplayView(StaffAPIView):
    required_permissions = {"POST": "portals.replay_reception"}

    @extend_schema(
        request=None,
        responses={201: ReplayResultSerializer, 200: ReplayResultSerializer, 400: ERROR, 404: ERROR, 409: ERROR},
        tags=["admin portals"],
    )
    def post(self, request, pk: int):
        result = services.replay_reception(
            actor=request.user, reception_id=pk, now=timezone.now(), ip=client_ip(request)
        )
        if result.status_code >= 400:
            response = Response(failure_body("The payload still maps to an invalid lead.", result.errors), status=400)
            response.exception = True
            return response
        data = {
            "reception": ReceptionSerializer(result.reception).data,
            "lead_id": result.lead.pk,
            "status": result.lead.status,
        }
        return ok(data, message="Reception replayed.", status=result.status_code)
