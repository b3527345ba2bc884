from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from portal.api import api

admin.site.site_header = "Atrium administration"
admin.site.site_title = "Atrium"
admin.site.index_title = "Portal configuration"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("accounts/", include("allauth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),  # set_language: POST, CSRF-checked, remembered in a cookie
    # The chat UI is a later issue; until then the portal's front door is its admin.
    path("", RedirectView.as_view(url="/admin/", permanent=False), name="home"),
]
