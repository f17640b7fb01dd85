from leadmarket.api.routes import slashless

from .api import views

webhook_urlpatterns = [
    *slashless("<str:portal_code>", views.WebhookView.as_view(), "webhook"),
]

admin_urlpatterns = [
    *slashless("portals", views.PortalListView.as_view(), "admin-portals"),
    *slashless("portals/<int:pk>", views.PortalDetailView.as_view(), "admin-portal"),
    *slashless("portals/<int:pk>/rotate-key", views.PortalRotateKeyView.as_view(), "admin-portal-rotate-key"),
    *slashless("portals/<int:pk>/preview", views.PortalPreviewView.as_view(), "admin-portal-preview"),
    *slashless("portals/<int:pk>/receptions", views.PortalReceptionListView.as_view(), "admin-portal-receptions"),
    *slashless("receptions/<int:pk>/replay", views.ReceptionReplayView.as_view(), "admin-reception-replay"),
]
