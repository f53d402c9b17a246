"""The demo's routes, mounted by config/urls.py only when the demo app is installed (`DEMO=1`)."""

from django.urls import path

from demo import judge

urlpatterns = [
    path("demo-judge/v1/chat/completions", judge.chat_completions, name="demo-judge"),
]
