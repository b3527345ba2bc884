"""Websocket routes (wrapped in portal/asgi.py by the origin check and session authentication)."""
from django.urls import path

from chat.consumers import ChatConsumer

websocket_urlpatterns = [
    # (django-stubs types path() for views only; channels' URLRouter takes ASGI applications)
    path("ws/chat/", ChatConsumer.as_asgi()),  # type: ignore[arg-type]
]
