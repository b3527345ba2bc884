from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from django.views.i18n import JavaScriptCatalog

from chat.page_views import conversation, new_chat
from chat.share_views import shared_conversation
from endpoints import demo
from portal.api import api
from portal.ui import set_theme

admin.site.site_header = "Atrium administration"
admin.site.site_title = "Atrium"
admin.site.index_title = "Portal configuration"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("v1/", include("chat.gateway.urls")),  # the OpenAI- and Anthropic-compatible gateway (chat/gateway/)
    path("accounts/", include("allauth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),  # set_language: POST, CSRF-checked, remembered in a cookie
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),  # the pages' scripts' strings (djangojs)
    path("theme/", set_theme, name="set_theme"),  # POST: light / dark / system, remembered in a cookie
    # Atrium's demo model (endpoints/demo.py), the upstream of the endpoint `bootstrap` creates.
    path("demo/v1/models", demo.models, name="demo_models"),
    path("demo/v1/chat/completions", demo.chat_completions, name="demo_chat_completions"),
    path("settings/", include("chat.settings_urls")),  # the user's own settings pages
    path("share/<str:token>", shared_conversation, name="shared_conversation"),  # public, read-only
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    # The chat page (chat/page_views.py): a new chat, and one of the user's conversations.
    path("c/<uuid:conversation_id>", conversation, name="conversation"),
    path("", new_chat, name="home"),
]
