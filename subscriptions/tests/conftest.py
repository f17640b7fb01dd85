from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Permission

from agencies.authentication import Realm
from agencies.tests.factories import StaffUserFactory
from conftest import client_for

# A 31-day billing period: January 2025.
JAN_1 = datetime(2025, 1, 1, tzinfo=UTC)
FEB_1 = datetime(2025, 2, 1, tzinfo=UTC)

PLAN_PERMISSIONS = ("view_plan", "add_plan", "change_plan", "delete_plan")


@pytest.fixture
def plan_staff_client(db):
    """A staff client whose role holds the Django permissions of Plan."""
    user = StaffUserFactory()
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="subscriptions", codename__in=PLAN_PERMISSIONS)
    )
    return client_for(user, Realm.STAFF)
