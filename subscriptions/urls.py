from leadmarket.api.routes import slashless

from .api import views

mobile_urlpatterns = [
    *slashless("subscription/plans", views.PlanCatalogueView.as_view(), "plan-catalogue"),
    *slashless("subscription/status", views.SubscriptionStatusView.as_view(), "subscription-status"),
    *slashless("subscription/subscribe", views.SubscribeView.as_view(), "subscription-subscribe"),
    *slashless("subscription/upgrade", views.ChangePlanView.as_view(), "subscription-upgrade"),
    *slashless("subscription/cancel", views.CancelView.as_view(), "subscription-cancel"),
    *slashless("territories", views.TerritoryListView.as_view(), "territories"),
    *slashless("territories/<str:zipcode>", views.TerritoryDetailView.as_view(), "territory-detail"),
    *slashless("billing/history", views.BillingHistoryView.as_view(), "billing-history"),
]

admin_urlpatterns = [
    *slashless("plans", views.StaffPlanListView.as_view(), "admin-plans"),
    *slashless("plans/<int:plan_id>", views.StaffPlanDetailView.as_view(), "admin-plan-detail"),
]
