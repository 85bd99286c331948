from django.contrib import admin
from django.urls import include, path
from rest_framework_simplejwt.views import TokenRefreshView

from accounts.views import ThrottledTokenObtainPairView, TokenBlacklistView, TokenVerifyView
from news_project import views

urlpatterns = [
    path("news/", include("news.urls")),
    path("api/token/", ThrottledTokenObtainPairView.as_view(), name="token_obtain_pair"),
    path("api/token/refresh/", TokenRefreshView.as_view(), name="token_refresh"),
    path("api/token/verify/", TokenVerifyView.as_view(), name="token_verify"),
    path("api/token/blacklist/", TokenBlacklistView.as_view(), name="token_blacklist"),
    path("api/schema/", views.SchemaView.as_view(), name="schema"),
    path("api/docs/", views.DocsView.as_view(url_name="schema"), name="swagger-ui"),
    path("health/", views.health, name="health"),
    # GET /health/sync/ and GET /metrics: how the sync keeps up, for monitoring systems.
    path("", include("sync.urls")),
    path("admin/", admin.site.urls),
]

handler400 = "news_project.views.bad_request"
handler403 = "news_project.views.permission_denied"
handler404 = "news_project.views.not_found"
handler500 = "news_project.views.server_error"
