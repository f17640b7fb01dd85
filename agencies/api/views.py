from django.conf import settings
from django.contrib.auth.models import Group
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import AuthenticationFailed, Throttled
from rest_framework.generics import ListAPIView

from leadmarket.api.access import ANY_STAFF, AgencyAPIView, PublicAPIView, StaffAPIView
from leadmarket.api.client import client_ip
from leadmarket.api.envelope import ok
from leadmarket.api.inputs import validated
from leadmarket.api.ratelimit import Limit, hit, retry_after
from leadmarket.api.schema import ERROR
from leadmarket.api.throttling import ApiRateThrottle, RegistrationThrottle, TokenRefreshThrottle

from .. import services
from ..authentication import Realm, issue_tokens
from ..models import User, normalize_email
from .serializers import (
    AgencyProfileInput,
    AgencyRegisterInput,
    AgencySerializer,
    AgencySessionSerializer,
    LoginInput,
    RoleCreateInput,
    RoleSerializer,
    StaffSessionSerializer,
    StaffUserCreateInput,
    StaffUserSerializer,
    TokenPairSerializer,
    TokenRefreshInput,
)


def throttled_log_in(request, realm: Realm):
    """Logs in with the body's credentials; repeated failures per account or address are a 429."""
    data = validated(LoginInput, request)
    email, ip = normalize_email(data["email"]), client_ip(request) or "unknown"
    per_account = Limit(f"login-failures-account-{realm}", settings.LOGIN_FAILURE_RATE)
    per_ip = Limit(f"login-failures-ip-{realm}", settings.LOGIN_FAILURE_RATE_PER_IP)
    waits = [retry_after(request, per_account, email), retry_after(request, per_ip, ip)]
    wait = max((seconds for seconds in waits if seconds), default=None)
    if wait:
        raise Throttled(wait=wait, detail="Too many failed login attempts. Try again later.")
    try:
        return services.log_in(email=email, password=data["password"], realm=realm)
    except AuthenticationFailed:
        hit(request, per_account, email)
        hit(request, per_ip, ip)
        raise


class AgencyRegisterView(PublicAPIView):
    throttle_classes = [ApiRateThrottle, RegistrationThrottle]

    @extend_schema(request=AgencyRegisterInput, responses={201: AgencySessionSerializer}, tags=["agency auth"])
    def post(self, request):
        data = validated(AgencyRegisterInput, request)
        agency = services.register_agency(**data, ip=client_ip(request))
        tokens = issue_tokens(agency.user, Realm.AGENCY)
        return ok({**tokens, "agency": AgencySerializer(agency).data}, message="Agency registered.", status=201)


class AgencyLoginView(PublicAPIView):
    @extend_schema(request=LoginInput, responses={200: AgencySessionSerializer, 401: ERROR}, tags=["agency auth"])
    def post(self, request):
        user, tokens = throttled_log_in(request, Realm.AGENCY)
        return ok({**tokens, "agency": AgencySerializer(user.agency).data}, message="Logged in.")


class TokenRefreshView(PublicAPIView):
    throttle_classes = [ApiRateThrottle, TokenRefreshThrottle]

    @extend_schema(request=TokenRefreshInput, responses={200: TokenPairSerializer, 401: ERROR}, tags=["agency auth"])
    def post(self, request):
        data = validated(TokenRefreshInput, request)
        return ok(services.refresh_tokens(refresh=data["refresh"]), message="Token refreshed.")


class AgencyProfileView(AgencyAPIView):
    @extend_schema(responses={200: AgencySerializer}, tags=["agency profile"])
    def get(self, request):
        return ok(AgencySerializer(request.user.agency).data)

    @extend_schema(request=AgencyProfileInput, responses={200: AgencySerializer}, tags=["agency profile"])
    def put(self, request):
        return self._update(request, partial=False)

    @extend_schema(request=AgencyProfileInput, responses={200: AgencySerializer}, tags=["agency profile"])
    def patch(self, request):
        return self._update(request, partial=True)

    def _update(self, request, *, partial: bool):
        changes = validated(AgencyProfileInput, request, partial=partial)
        agency = services.update_agency_profile(agency=request.user.agency, changes=changes, ip=client_ip(request))
        return ok(AgencySerializer(agency).data, message="Profile updated.")


class StaffLoginView(PublicAPIView):
    @extend_schema(request=LoginInput, responses={200: StaffSessionSerializer, 401: ERROR}, tags=["admin auth"])
    def post(self, request):
        user, tokens = throttled_log_in(request, Realm.STAFF)
        return ok({**tokens, "user": StaffUserSerializer(user).data}, message="Logged in.")


class StaffTokenRefreshView(PublicAPIView):
    throttle_classes = [ApiRateThrottle, TokenRefreshThrottle]

    @extend_schema(request=TokenRefreshInput, responses={200: TokenPairSerializer, 401: ERROR}, tags=["admin auth"])
    def post(self, request):
        data = validated(TokenRefreshInput, request)
        return ok(services.refresh_tokens(refresh=data["refresh"]), message="Token refreshed.")


class StaffMeView(StaffAPIView):
    required_permissions = {"GET": ANY_STAFF}

    @extend_schema(responses={200: StaffUserSerializer}, tags=["admin auth"])
    def get(self, request):
        return ok(StaffUserSerializer(request.user).data)


@extend_schema(tags=["admin users"])
class StaffUserListView(StaffAPIView, ListAPIView):
    """Staff users and their roles (never password hashes)."""

    required_permissions = {"GET": "agencies.view_user", "POST": "agencies.add_user"}
    serializer_class = StaffUserSerializer
    queryset = User.objects.filter(is_staff=True).prefetch_related("groups").order_by("email", "id")

    @extend_schema(request=StaffUserCreateInput, responses={201: StaffUserSerializer})
    def post(self, request):
        data = validated(StaffUserCreateInput, request)
        user = services.create_staff_user(**data, actor=request.user, ip=client_ip(request))
        return ok(StaffUserSerializer(user).data, message="Staff user created.", status=201)


@extend_schema(tags=["admin users"])
class RoleListView(StaffAPIView, ListAPIView):
    """Roles: Django groups with permission codes (`app_label.codename`)."""

    required_permissions = {"GET": "auth.view_group", "POST": "auth.add_group"}
    serializer_class = RoleSerializer
    queryset = Group.objects.prefetch_related("permissions__content_type").order_by("name", "id")

    @extend_schema(request=RoleCreateInput, responses={201: RoleSerializer})
    def post(self, request):
        data = validated(RoleCreateInput, request)
        role = services.create_role(
            name=data["name"], permission_codes=data["permissions"], actor=request.user, ip=client_ip(request)
        )
        return ok(RoleSerializer(role).data, message="Role created.", status=201)
