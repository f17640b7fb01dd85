import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIRequestFactory, force_authenticate

from leadmarket.api.access import StaffAPIView
from leadmarket.api.envelope import ok

pytestmark = pytest.mark.django_db


class ProbeView(StaffAPIView):
    required_permissions = {"GET": "agencies.view_agency"}

    def get(self, request):
        return ok("seen")

    def post(self, request):  # declared nowhere: must be refused
        return ok("posted")


def call(method: str, user):
    request = getattr(APIRequestFactory(), method)("/probe", {}, format="json")
    force_authenticate(request, user=user)
    return ProbeView.as_view()(request)


def test_staff_without_the_declared_permission_gets_403(staff_user):
    assert call("get", staff_user).status_code == 403


def test_staff_with_the_declared_permission_is_allowed(staff_user):
    staff_user.user_permissions.add(Permission.objects.get(codename="view_agency"))

    assert call("get", staff_user).status_code == 200


def test_a_method_without_a_declared_permission_is_refused_even_for_superusers(staff_user):
    staff_user.is_superuser = True

    assert call("post", staff_user).status_code == 403
    assert call("get", staff_user).status_code == 200


def test_a_method_the_view_does_not_have_is_405_not_403(staff_user):
    staff_user.is_superuser = True

    assert call("put", staff_user).status_code == 405
    assert call("options", staff_user).status_code == 200
