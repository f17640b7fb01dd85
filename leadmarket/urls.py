from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from agencies.urls import admin_urlpatterns as agency_admin_urls
from agencies.urls import app_urlpatterns as agency_app_urls
from agencies.urls import mobile_urlpatterns as agency_mobile_urls
from audit.urls import admin_urlpatterns as audit_admin_urls
from leadmarket import health
from leadmarket.api.views import api_not_found
from leadmarket.metrics import metrics_view
from leads.urls import admin_urlpatterns as lead_admin_urls
from leads.urls import mobile_urlpatterns as lead_mobile_urls
from portals.urls import admin_urlpatterns as portal_admin_urls
from portals.urls import webhook_urlpatterns as portal_webhook_urls
from subscriptions.urls import admin_urlpatterns as subscription_admin_urls
from subscriptions.urls import mobile_urlpatterns as subscription_mobile_urls

handler400 = "leadmarket.api.views.bad_request"
handler403 = "leadmarket.api.views.permission_denied"
handler404 = "leadmarket.api.views.not_found"
handler500 = "leadmarket.api.views.server_error"

api_urlpatterns = [
    path("v1/agencies/", include(agency_mobile_urls)),
    path("mobile/", include(agency_app_urls)),
    path("admin/", include(agency_admin_urls)),
    path("admin/", include(audit_admin_urls)),
    path("mobile/", include(lead_mobile_urls)),
    path("admin/", include(lead_admin_urls)),
    path("admin/", include(portal_admin_urls)),
    path("webhooks/", include(portal_webhook_urls)),
    path("mobile/", include(subscription_mobile_urls)),
    path("admin/subscriptions/", include(subscription_admin_urls)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
    path("redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    *([path("bench/", include("bench.ceilings"))] if settings.BENCH_CEILINGS else []),
    # Unknown /api/ paths are an enveloped 404 even when DEBUG shows Django's debug pages.
    re_path(r"^.*$", api_not_found),
]

urlpatterns = [
    path("", RedirectView.as_view(url="/api/docs/", permanent=False)),
    path("api/", include(api_urlpatterns)),
    path("admin/", admin.site.urls),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("metrics", metrics_view, name="metrics"),
]
