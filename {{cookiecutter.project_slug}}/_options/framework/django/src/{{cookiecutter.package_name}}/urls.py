"""URL routes of the example views."""

from django.urls import path

from . import views

urlpatterns = [
    path("healthz", views.healthz),
    path("session", views.session),
    path("token", views.token),
    path("events", views.events),
]
