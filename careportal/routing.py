"""WebSocket routes of the Care Portal (the real-time consumers arrive with the real-time issue)."""

websocket_urlpatterns: list = []
