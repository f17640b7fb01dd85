from leadmarket.api.routes import slashless

from .api import views

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
]
