"""Web pages of the lending app (namespace `lending`, under /gpus/), included by config/urls.py.

The .ics feeds live under /api/ (config/api_urls.py): calendar apps cannot sign in, and /api/ is the
part of the site that answers without a session; a random token in the URL, per feed, is their key
(reset from the feeds panel: /gpus/feeds/<member|subteam>/<username|slug>/reset/).
"""

from django.urls import path

from lending import views

urlpatterns = [
    path("gpus/", views.reservation_list, name="list"),
    path("gpus/new/", views.reservation_create, name="create"),
    path("gpus/preview/", views.reservation_preview, name="preview"),
    path("gpus/calendar/", views.calendar, name="calendar"),
    path("gpus/feeds/<str:kind>/<str:key>/reset/", views.feed_reset, name="feed-reset"),
    path("gpus/decide/", views.reservation_decide_many, name="decide_many"),
    path("gpus/<int:pk>/", views.reservation_detail, name="detail"),
    path("gpus/<int:pk>/approve/", views.reservation_approve, name="approve"),
    path("gpus/<int:pk>/reject/", views.reservation_reject, name="reject"),
    path("gpus/<int:pk>/cancel/", views.reservation_cancel, name="cancel"),
    path("gpus/<int:pk>/move/", views.reservation_move, name="move"),
]
