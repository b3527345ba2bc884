"""The gateway's routes, mounted at /v1/ (portal/urls.py)."""
from django.urls import path

from chat.gateway import views

urlpatterns = [
    path("models", views.models, name="gateway_models"),
    path("chat/completions", views.chat_completions, name="gateway_chat_completions"),
    path("messages", views.messages, name="gateway_messages"),
]
