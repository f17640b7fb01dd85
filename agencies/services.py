"""Agency accounts: registration, login, token refresh, profile changes, staff changes
(status: suspension and reactivation), and staff roles and users."""

from datetime import datetime

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.models import Group, Permission, update_last_login
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import RefreshToken

from audit.services import record_action, snapshot
from leadmarket.errors import NotFound
from leads.distribution import retry_unassigned_in, withdraw_agency_offers
from subscriptions.models import Territory

from .authentication import REALM_CLAIM, Realm, issue_tokens, user_belongs_to_realm, user_may_authenticate
from .models import Agency, AgencyStatus, User, normalize_email

INVALID_CREDENTIALS = "Invalid email or password."
DUPLICATE_EMAIL = "An account with this email already exists."
PROFILE_FIELDS = ("business_name", "contact_name", "phone", "accepting_leads")
STAFF_FIELDS = (*PROFILE_FIELDS, "status")
STATUS_ACTIONS = {
    AgencyStatus.SUSPENDED: "agency.suspended",
    AgencyStatus.ACTIVE: "agency.reactivated",
    AgencyStatus.PENDING: "agency.set_pending",
}


def _create_user(*, email: str, password: str, full_name: str = "", is_staff: bool = False) -> User:
    """A new user with a validated password; ValidationError on `email` (taken) or `password`."""
    user = User(email=normalize_email(email), full_name=full_name, is_staff=is_staff)
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from exc
    if User.objects.filter(email=user.email).exists():
        raise ValidationError({"email": [DUPLICATE_EMAIL]})
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError as exc:  # a concurrent registration won the race
        raise ValidationError({"email": [DUPLICATE_EMAIL]}) from exc
    return user


@transaction.atomic
def register_agency(
    *,
    email: str,
    password: str,
    business_name: str,
    contact_name: str = "",
    phone: str = "",
    ip: str | None = None,
) -> Agency:
    """Creates the owner user and the agency; `active` unless AGENCY_REQUIRES_APPROVAL.

    Raises ValidationError on `email` (taken) or `password` (too weak).
    """
    user = _create_user(email=email, password=password)
    status = AgencyStatus.PENDING if settings.AGENCY_REQUIRES_APPROVAL else AgencyStatus.ACTIVE
    agency = Agency(user=user, business_name=business_name, contact_name=contact_name, phone=phone, status=status)
    agency.full_clean()
    agency.save()
    record_action(actor=user, action="agency.registered", target=agency, after=snapshot(agency), ip=ip)
    return agency


def log_in(*, email: str, password: str, realm: Realm) -> tuple[User, dict[str, str]]:
    """Checks the credentials for the realm and issues a token pair.

    Raises AuthenticationFailed with one message whether the email or the password was
    wrong, and also for an account of the other realm.
    """
    user = authenticate(email=normalize_email(email), password=password)
    if user is None or not user_belongs_to_realm(user, realm):
        raise AuthenticationFailed(INVALID_CREDENTIALS, code="invalid_credentials")
    if not user_may_authenticate(user):
        raise AuthenticationFailed("The account is disabled or suspended.", code="user_inactive")
    update_last_login(None, user)
    return user, issue_tokens(user, realm)


def refresh_tokens(*, refresh: str) -> dict[str, str]:
    """Exchanges a refresh token for a new pair; the used one is blacklisted.

    A refresh token works once: a second use, even a concurrent one, is refused
    (the blacklist row is unique per token). Raises AuthenticationFailed.
    """
    try:
        token = RefreshToken(refresh)
    except TokenError as exc:
        raise AuthenticationFailed("Token is invalid or expired.", code="token_not_valid") from exc
    realm = token.get(REALM_CLAIM)
    user = User.objects.select_related("agency").filter(pk=token.get(api_settings.USER_ID_CLAIM)).first()
    if realm not in Realm.values or user is None or not user_belongs_to_realm(user, realm):
        raise AuthenticationFailed("Token is invalid or expired.", code="token_not_valid")
    if not user_may_authenticate(user):
        raise AuthenticationFailed("The account is disabled or suspended.", code="user_inactive")
    _, newly_blacklisted = token.blacklist()
    if not newly_blacklisted:
        raise AuthenticationFailed("Token is invalid or expired.", code="token_not_valid")
    return issue_tokens(user, Realm(realm))


@transaction.atomic
def update_agency_profile(*, agency: Agency, changes: dict, ip: str | None = None) -> Agency:
    """Changes the profile fields an agency may edit itself (never status or money).

    Raises ValidationError for a field outside PROFILE_FIELDS or an invalid value.
    """
    forbidden = sorted(set(changes) - set(PROFILE_FIELDS))
    if forbidden:
        raise ValidationError({field: ["This field cannot be changed here."] for field in forbidden})
    agency = Agency.objects.select_for_update().get(pk=agency.pk)
    before = snapshot(agency, PROFILE_FIELDS)
    for field, value in changes.items():
        setattr(agency, field, value)
    agency.full_clean()
    agency.save(update_fields=[*changes, "updated_at"])
    record_action(
        actor=agency.user,
        action="agency.profile_updated",
        target=agency,
        before=before,
        after=snapshot(agency, PROFILE_FIELDS),
        ip=ip,
    )
    if agency.accepting_leads and not before["accepting_leads"]:
        zipcodes = Territory.objects.live().filter(subscription__agency=agency).values_list("zipcode", flat=True)
        retry_unassigned_in(zipcodes)
    return agency


def update_agency(*, agency_id: int, changes: dict, actor: User, now: datetime, ip: str | None = None) -> Agency:
    """Staff change an agency's profile fields and its status (STAFF_FIELDS).

    An agency that leaves `active` (suspended, or back to pending) is out of rotation as
    soon as this returns, and its live offers have moved to the next eligible agency; one
    that becomes active again (or resumes taking leads) is back in rotation, and the
    unassigned leads of its ZIP codes are retried after commit.

    Two transactions, so that no lock is ever taken against the engine's order (lead rows,
    then the ZIP code's cursor, then territory/subscription/agency rows):

    1. Lock the agency row, apply the changes, audit them, commit. Distribution reads the
       agency under a row lock (FOR NO KEY UPDATE): one that already holds it finishes
       first (this transaction waits for it, and its offer is seen in step 2); one that
       comes after reads the committed status and skips the agency.
    2. When a status was given and the agency is not active, `withdraw_agency_offers`
       locks the leads of its live offers (by id), withdraws the offers and distributes
       the leads, in the engine's order. No offer to the agency can appear after step 1.

    Doing both in one transaction would lock the agency before the leads: a distribution
    holding a lead and waiting for the agency row would deadlock with it. Locking the
    leads first instead would miss offers made between reading them and locking the agency.
    If step 2 fails, the agency is already out of rotation; repeating the call moves the
    rest, and the expiry sweep would move them on anyway. Must not run inside another
    transaction when `status` is given (step 1 must commit before step 2).

    Raises NotFound, or ValidationError for a field outside STAFF_FIELDS or a bad value.
    """
    forbidden = sorted(set(changes) - set(STAFF_FIELDS))
    if forbidden:
        raise ValidationError({field: ["This field cannot be changed here."] for field in forbidden})
    with transaction.atomic():
        agency = Agency.objects.select_for_update().filter(pk=agency_id).first()
        if agency is None:
            raise NotFound("Agency not found.")
        before = snapshot(agency, STAFF_FIELDS)
        for field, value in changes.items():
            setattr(agency, field, value)
        agency.full_clean()
        after = snapshot(agency, STAFF_FIELDS)
        if after != before:
            agency.save(update_fields=[*changes, "updated_at"])
            status_changed = after["status"] != before["status"]
            record_action(
                actor=actor,
                action=STATUS_ACTIONS[agency.status] if status_changed else "agency.updated",
                target=agency,
                before=before,
                after=after,
                ip=ip,
            )
            back_in_rotation = (status_changed or not before["accepting_leads"]) and (
                agency.status == AgencyStatus.ACTIVE and agency.accepting_leads
            )
            if back_in_rotation:
                zipcodes = (
                    Territory.objects.live().filter(subscription__agency=agency).values_list("zipcode", flat=True)
                )
                retry_unassigned_in(zipcodes)
    if "status" in changes and agency.status != AgencyStatus.ACTIVE:
        withdraw_agency_offers(agency_id=agency.pk, actor=actor, now=now, reason=f"agency {agency.status}", ip=ip)
    return agency


def set_agency_status(
    *, agency_id: int, status: AgencyStatus, actor: User, now: datetime, ip: str | None = None
) -> Agency:
    """Suspends or reactivates an agency (or sets it back to pending); see `update_agency`.

    Suspending an agency that is already suspended moves any offer still live to it.
    """
    return update_agency(agency_id=agency_id, changes={"status": status}, actor=actor, now=now, ip=ip)


def permissions_from_codes(codes: list[str]) -> list[Permission]:
    """The permissions named `app_label.codename`; ValidationError on `permissions` for unknown ones."""
    wanted = set(codes)
    found = {
        f"{permission.content_type.app_label}.{permission.codename}": permission
        for permission in Permission.objects.select_related("content_type").filter(
            codename__in={code.partition(".")[2] for code in wanted}
        )
    }
    unknown = sorted(wanted - set(found))
    if unknown:
        raise ValidationError({"permissions": [f"Unknown permission: {code}" for code in unknown]})
    return [found[code] for code in sorted(wanted)]


def _refuse_escalation(actor: User, permission_codes) -> None:
    """Staff hand out only what they hold: no minting a stronger role or account."""
    if not actor.is_superuser and not actor.has_perms(list(permission_codes)):
        raise PermissionDenied("You cannot grant permissions you do not hold yourself.")


@transaction.atomic
def create_role(*, name: str, permission_codes: list[str], actor: User, ip: str | None = None) -> Group:
    """A role is a Django group with permissions, so the API and the admin site agree.

    Raises ValidationError on `name` (taken) or `permissions` (unknown code), and
    PermissionDenied when the actor would grant a permission it does not hold itself.
    """
    permissions = permissions_from_codes(permission_codes)
    _refuse_escalation(actor, permission_codes)
    if Group.objects.filter(name__iexact=name).exists():
        raise ValidationError({"name": ["A role with this name already exists."]})
    role = Group.objects.create(name=name)
    role.permissions.set(permissions)
    record_action(
        actor=actor,
        action="role.created",
        target=role,
        after={"name": name, "permissions": sorted(permission_codes)},
        ip=ip,
    )
    return role


@transaction.atomic
def create_staff_user(
    *, email: str, password: str, full_name: str = "", role: Group, actor: User, ip: str | None = None
) -> User:
    """Creates a staff user holding one role. Raises ValidationError on `email` or `password`,
    and PermissionDenied when the role holds a permission the actor does not."""
    _refuse_escalation(actor, [f"{p.content_type.app_label}.{p.codename}" for p in role.permissions.all()])
    user = _create_user(email=email, password=password, full_name=full_name, is_staff=True)
    user.groups.set([role])
    record_action(
        actor=actor,
        action="staff_user.created",
        target=user,
        after={"email": user.email, "full_name": full_name, "role": role.name},
        ip=ip,
    )
    return user
