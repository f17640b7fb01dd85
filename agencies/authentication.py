"""JWT authentication split into two realms: agencies (mobile app) and staff (admin portal).

Every token carries a `realm` claim set at login. A token is only accepted by the API of
its realm, so an agency's token is refused on every /api/admin/ path and a staff token
on the mobile API. The user is loaded on every request, so a suspended agency or a
deactivated user is refused on its next request, not when the token expires.
"""

from django.db.models import TextChoices
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import RefreshToken

from .models import AgencyStatus, User

REALM_CLAIM = "realm"


class Realm(TextChoices):
    AGENCY = "agency"
    STAFF = "staff"


def user_may_authenticate(user: User) -> bool:
    """Active users only; an agency owner only while the agency is not suspended."""
    if user is None or not user.is_active:
        return False
    agency = getattr(user, "agency", None)
    return agency is None or agency.status != AgencyStatus.SUSPENDED


def user_belongs_to_realm(user: User, realm: str) -> bool:
    if realm == Realm.STAFF:
        return user.is_staff
    return hasattr(user, "agency")


def issue_tokens(user: User, realm: Realm) -> dict[str, str]:
    refresh = RefreshToken.for_user(user)
    refresh[REALM_CLAIM] = str(realm)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


class RealmJWTAuthentication(JWTAuthentication):
    realm: Realm

    def get_user(self, validated_token):
        if validated_token.get(REALM_CLAIM) != self.realm:
            raise AuthenticationFailed(_("This token is not valid for this API."), code="wrong_realm")
        try:
            # get(), not filter().first(): on every request, first()'s ordering and slicing cost
            # a third of this lookup's Python time.
            user = User.objects.select_related("agency").get(pk=validated_token.get(api_settings.USER_ID_CLAIM))
        except (User.DoesNotExist, ValueError, TypeError) as exc:  # deleted, or not a user id
            raise AuthenticationFailed(_("The token's account does not exist."), code="user_not_found") from exc
        if not user_belongs_to_realm(user, self.realm) or not user_may_authenticate(user):
            raise AuthenticationFailed(_("The account is disabled or suspended."), code="user_inactive")
        return user


class AgencyJWTAuthentication(RealmJWTAuthentication):
    realm = Realm.AGENCY


class StaffJWTAuthentication(RealmJWTAuthentication):
    realm = Realm.STAFF


class AgencyJWTScheme(OpenApiAuthenticationExtension):
    target_class = AgencyJWTAuthentication
    name = "agencyJWT"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "Access token from /api/v1/agencies/login.",
        }


class StaffJWTScheme(OpenApiAuthenticationExtension):
    target_class = StaffJWTAuthentication
    name = "staffJWT"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "Access token from /api/admin/auth/login.",
        }
