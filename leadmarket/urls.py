from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from agencies.urls import admin_urlpatterns as agency_admin_urls
from agencies.urls import mobile_urlpatterns as agency_mobile_urls
from leadmarket.api.views import api_not_found
from subscriptions.urls import admin_urlpatterns as subscription_admin_urls
from subscriptions.urls import mobile_urlpatterns as subscription_mobile_urls

handler400 = "leadmarket.api.views.bad_request"
handler403 = "leadmarket.api.views.permission_denied"
handler404 = "leadmarket.api.views.not_found"
handler500 = "leadmarket.api.views.server_error"

api_urlpatterns = [
    path("v1/agencies/", include(agency_mobile_urls)),
    path("admin/", include(agency_admin_urls)),
    path("mobile/", include(subscription_mobile_urls)),
    path("admin/subscriptions/", include(subscription_admin_urls)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    # Unknown /api/ paths are an enveloped 404 even when DEBUG shows Django's debug pages.
    re_path(r"^.*$", api_not_found),
]

urlpatterns = [
    path("api/", include(api_urlpatterns)),
    path("admin/", admin.site.urls),
]
