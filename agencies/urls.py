from leadmarket.api.routes import slashless

from .api import notification_views, views

mobile_urlpatterns = [
    *slashless("register", views.AgencyRegisterView.as_view(), "agency-register"),
    *slashless("login", views.AgencyLoginView.as_view(), "agency-login"),
    *slashless("token/refresh", views.TokenRefreshView.as_view(), "agency-token-refresh"),
    *slashless("profile", views.AgencyProfileView.as_view(), "agency-profile"),
]

admin_urlpatterns = [
    *slashless("auth/login", views.StaffLoginView.as_view(), "admin-login"),
    *slashless("auth/refresh", views.StaffTokenRefreshView.as_view(), "admin-token-refresh"),
    *slashless("auth/me", views.StaffMeView.as_view(), "admin-me"),
    *slashless("users", views.StaffUserListView.as_view(), "admin-users"),
    *slashless("roles", views.RoleListView.as_view(), "admin-roles"),
    *slashless("agencies", views.AdminAgencyListView.as_view(), "admin-agencies"),
    *slashless("agencies/<int:pk>", views.AdminAgencyDetailView.as_view(), "admin-agency"),
]

app_urlpatterns = [
    *slashless("devices", notification_views.DeviceRegisterView.as_view(), "mobile-devices"),
    *slashless("devices/<str:token>", notification_views.DeviceDetailView.as_view(), "mobile-device"),
    *slashless("notifications", notification_views.NotificationListView.as_view(), "mobile-notifications"),
    *slashless(
        "notifications/read-all", notification_views.NotificationReadAllView.as_view(), "mobile-notifications-read-all"
    ),
    *slashless(
        "notifications/<int:pk>/read", notification_views.NotificationReadView.as_view(), "mobile-notification-read"
    ),
]
