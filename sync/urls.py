from django.urls import path

from sync import views

urlpatterns = [
    path("health/sync/", views.sync_health_view, name="sync-health"),
    path("metrics", views.metrics_view, name="metrics"),
]
