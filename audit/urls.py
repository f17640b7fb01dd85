from leadmarket.api.routes import slashless

from .api import views

admin_urlpatterns = [
    *slashless("audit", views.AuditLogListView.as_view(), "admin-audit"),
]
