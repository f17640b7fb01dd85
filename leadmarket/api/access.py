"""Base views for the three audiences of the API; every view derives from one of them."""

from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated
from rest_framework.views import APIView

from agencies.authentication import AgencyJWTAuthentication, StaffJWTAuthentication


class PublicAPIView(APIView):
    """No credentials: register, login, token refresh, the plan catalogue."""

    authentication_classes: list = []
    permission_classes = [AllowAny]


class AgencyAPIView(APIView):
    """The mobile app: agency tokens only; `request.user.agency` is the caller's agency."""

    authentication_classes = [AgencyJWTAuthentication]
    permission_classes = [IsAuthenticated]


ANY_STAFF = "any-staff"


class StaffPermission(BasePermission):
    """Each staff view declares the Django permission every method needs, e.g.

        required_permissions = {"GET": "subscriptions.view_plan", "POST": "subscriptions.add_plan"}

    Permissions come from the user's role (a Django group) so the admin site and the API
    enforce the same thing. A method the view does not declare is refused (fail closed).
    """

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated and request.user.is_staff):
            return False
        method = "GET" if request.method == "HEAD" else request.method
        if method == "OPTIONS" or not hasattr(view, method.lower()):
            return True  # OPTIONS describes the endpoint; a method the view lacks is a 405
        code = getattr(view, "required_permissions", {}).get(method)
        return code is not None and (code == ANY_STAFF or request.user.has_perm(code))


class StaffAPIView(APIView):
    """The admin portal: staff tokens only, and the permission the method declares."""

    authentication_classes = [StaffJWTAuthentication]
    permission_classes = [IsAuthenticated, StaffPermission]
    required_permissions: dict[str, str] = {}
