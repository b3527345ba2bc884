"""Websocket routes (the chat consumer is added by the streaming issue)."""
from django.urls import path  # noqa: F401

websocket_urlpatterns: list = []
