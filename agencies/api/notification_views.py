import django_filters
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework.generics import ListAPIView

from leadmarket.api.access import AgencyAPIView
from leadmarket.api.envelope import ok
from leadmarket.api.inputs import validated
from leadmarket.api.schema import ERROR

from .. import notifications
from ..models import Notification
from .serializers import (
    DeviceRegisterInput,
    DeviceSerializer,
    MarkedReadSerializer,
    NotificationPageSerializer,
    NotificationSerializer,
)


@extend_schema(tags=["mobile notifications"])
class DeviceRegisterView(AgencyAPIView):
    @extend_schema(request=DeviceRegisterInput, responses={201: DeviceSerializer})
    def post(self, request):
        """Registers the app's FCM token; a token known before moves to this agency."""
        data = validated(DeviceRegisterInput, request)
        device = notifications.register_device(agency=request.user.agency, now=timezone.now(), **data)
        return ok(DeviceSerializer(device).data, message="Device registered.", status=201)


@extend_schema(tags=["mobile notifications"])
class DeviceDetailView(AgencyAPIView):
    @extend_schema(responses={200: None, 404: ERROR})
    def delete(self, request, token: str):
        """Removes one of the agency's devices (on logout)."""
        notifications.unregister_device(agency=request.user.agency, token=token)
        return ok(None, message="Device removed.")


class NotificationFilter(django_filters.FilterSet):
    unread = django_filters.ChoiceFilter(
        choices=[("true", "true"), ("false", "false")],
        method="filter_unread",
        help_text="true: only unread; false: only read.",
    )

    class Meta:
        model = Notification
        fields = ()

    def filter_unread(self, notifications, name, value):
        return notifications.unread() if value == "true" else notifications.exclude(read_at__isnull=True)


@extend_schema(tags=["mobile notifications"])
class NotificationListView(AgencyAPIView, ListAPIView):
    """The agency's inbox, newest first, with the number of unread notifications."""

    serializer_class = NotificationSerializer
    filterset_class = NotificationFilter
    queryset = Notification.objects.none()  # for the schema; requests use get_queryset

    def get_queryset(self):
        return Notification.objects.for_agency(self.request.user.agency).order_by("-created_at", "-id")

    @extend_schema(responses={200: NotificationPageSerializer})
    def get(self, request, *args, **kwargs):
        response = self.list(request, *args, **kwargs)
        response.data["unread_count"] = Notification.objects.for_agency(request.user.agency).unread().count()
        return response


@extend_schema(tags=["mobile notifications"])
class NotificationReadView(AgencyAPIView):
    @extend_schema(request=None, responses={200: NotificationSerializer, 404: ERROR})
    def put(self, request, pk: int):
        notification = notifications.mark_read(agency=request.user.agency, notification_id=pk, now=timezone.now())
        return ok(NotificationSerializer(notification).data, message="Marked read.")


@extend_schema(tags=["mobile notifications"])
class NotificationReadAllView(AgencyAPIView):
    @extend_schema(request=None, responses={200: MarkedReadSerializer})
    def put(self, request):
        count = notifications.mark_all_read(agency=request.user.agency, now=timezone.now())
        return ok({"marked_read": count}, message="All marked read.")
