"""The project wiring: settings, the URL conf, the API router, ASGI and websocket routing.

It sits above every app and may import any of them; no app imports it.
"""
