"""Web pages of the evals app, included by config/urls.py (namespace `evals`)."""

from django.urls import path

from evals import views

urlpatterns = [
    path("leaderboard/", views.leaderboard, name="leaderboard"),
    path("leaderboard/<slug:slug>/", views.leaderboard, name="subteam-leaderboard"),
    path("evals/results/<int:pk>/", views.result_detail, name="result"),
    path("evals/import/", views.import_results, name="import"),
    path("evals/baselines/new/", views.add_baseline, name="baseline-create"),
]
