"""The portal's routes: each site's page and its API under `/c/<code>/`."""

from django.urls import include, path

from . import api, views

urlpatterns = [
    path("c/<str:code>/", views.page, name="portal-page"),
    path("c/<str:code>/", include(api.urlpatterns())),
]
