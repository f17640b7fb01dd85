"""Base views for the three audiences of the API; every view derives from one of them."""

from rest_framework.permissions import AllowAny, IsAuthenticated
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


class StaffAPIView(APIView):
    """The admin portal: staff tokens only."""

    authentication_classes = [StaffJWTAuthentication]
    permission_classes = [IsAuthenticated]
