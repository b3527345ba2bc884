"""/settings/: the user's own settings pages (chat/settings_views.py, chat/settings_keys.py)."""
from __future__ import annotations

from django.urls import path
from django.views.generic import RedirectView

from chat import settings_keys as keys
from chat import settings_views as views

app_name = "settings"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="settings:general"), name="index"),
    path("general/", views.general, name="general"),
    path("account/", views.account, name="account"),
    path("provider-keys/", keys.provider_keys_page, name="provider_keys"),
    path("provider-keys/<int:endpoint_id>/", keys.provider_key_save, name="provider_key_save"),
    path("provider-keys/<int:endpoint_id>/delete/", keys.provider_key_remove, name="provider_key_remove"),
    path("api-keys/", keys.api_keys, name="api_keys"),
    path("api-keys/new/", keys.api_key_created, name="api_key_created"),
    path("api-keys/<int:key_id>/revoke/", keys.api_key_revoke, name="api_key_revoke"),
    path("usage/", views.usage, name="usage"),
    path("shared-links/", views.share_links, name="shares"),
    path("shared-links/<uuid:share_id>/revoke/", views.share_revoke, name="share_revoke"),
    path("data/", views.data, name="data"),
]
