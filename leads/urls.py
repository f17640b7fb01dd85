from leadmarket.api.routes import slashless

from .api import views

mobile_urlpatterns = [
    *slashless("leads", views.MobileLeadListView.as_view(), "mobile-leads"),
    *slashless("leads/<int:pk>", views.MobileLeadDetailView.as_view(), "mobile-lead"),
    *slashless("leads/<int:pk>/accept", views.MobileLeadAcceptView.as_view(), "mobile-lead-accept"),
    *slashless("leads/<int:pk>/reject", views.MobileLeadRejectView.as_view(), "mobile-lead-reject"),
]

admin_urlpatterns = [
    *slashless("leads", views.AdminLeadListView.as_view(), "admin-leads"),
    *slashless("leads/distribution/stats", views.DistributionStatsView.as_view(), "admin-distribution-stats"),
    *slashless("leads/<int:pk>", views.AdminLeadDetailView.as_view(), "admin-lead"),
    *slashless("leads/<int:pk>/distribute", views.AdminLeadDistributeView.as_view(), "admin-lead-distribute"),
]
