from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from endpoints import demo
from portal.api import api

admin.site.site_header = "Atrium administration"
admin.site.site_title = "Atrium"
admin.site.index_title = "Portal configuration"
# No "View site" link while the portal's front door is the admin itself (it would loop back here).
admin.site.site_url = None

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("accounts/", include("allauth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),  # set_language: POST, CSRF-checked, remembered in a cookie
    # Atrium's demo model (endpoints/demo.py), the upstream of the endpoint `bootstrap` creates.
    path("demo/v1/models", demo.models, name="demo_models"),
    path("demo/v1/chat/completions", demo.chat_completions, name="demo_chat_completions"),
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    # The chat UI is a later issue; until then the portal's front door is its admin.
    path("", RedirectView.as_view(url="/admin/", permanent=False), name="home"),
]
