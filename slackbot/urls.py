"""Slack's endpoints, mounted at /slack/ by config/urls.py."""

from django.urls import path

from slackbot import views

urlpatterns = [
    path("commands/", views.command, name="commands"),
]
