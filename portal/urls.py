from django.contrib import admin
from django.urls import include, path

from chat.views import home
from portal.api import api

admin.site.site_header = "Atrium administration"
admin.site.site_title = "Atrium"
admin.site.index_title = "Portal configuration"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("accounts/", include("allauth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),  # set_language: POST, CSRF-checked, remembered in a cookie
    # Every signed-in user's landing page (the chat page will replace it); staff find the admin there.
    path("", home, name="home"),
]
