"""REST API under /api/: /api/v1/… resources, the OpenAPI schema and its Swagger UI.

/api/v1/members/<username>/   read-only; `?subteam=<slug>`
/api/v1/subteams/<slug>/      read-only
/api/v1/tasks/<id>/           CRUD; `?subteam=&status=&assignee=<username>&goal=<id>`
/api/v1/goals/<id>/           CRUD; `?subteam=<slug>|none&project_wide=&status=`
/api/v1/goals/<id>/revisions/ read-only history of a goal
/api/v1/milestones/<id>/      CRUD; `?subteam=<slug>|none&project_wide=&done=`
/api/v1/jobs/<uuid>/          list, submit, read; `?subteam=&state=&owner=<username>&cluster=<id>`;
                              POST …/cancel/, GET …/logs/?stream=stdout&offset=N
/api/v1/clusters/<id>/        read-only, with partitions and nodes
/api/v1/reservations/<id>/    GPU bookings: list, book, read, PATCH start/end; `?subteam=&state=&requester=&cluster=`;
                              POST …/approve/, …/reject/ (admins), …/cancel/
/api/v1/clusters/<id>/availability/  free GPUs per hour, `?start=&end=`
/api/v1/calendars/<subteam|member>/<slug|username>/<token>.ics  booking feeds (a random token per feed, no sign-in)
/api/v1/pipelines/<id>/       list, submit (SFT → DPO → eval …), read; `?subteam=`
/api/v1/job-templates/<id>/   list, save, read, delete; `?subteam=`
/api/v1/metrics/series/       `?job=<uuid>&key=train/loss&min_step=&max_step=&points=2000` (min/max buckets)
/api/v1/metrics/keys/         `?job=<uuid>`: the metric keys stored for the jobs
/api/v1/eval-results/<id>/    list, read; `?subteam=<slug>|none&benchmark=&model=&is_baseline=`;
                              POST …/import/ (FastChat judgments + questions), POST …/baselines/
/api/v1/datasets/<id>/        data sets: list, register (POST), read; `?subteam=&name=&state=`
/api/v1/sweeps/<id>/          sweeps: list, submit (POST: training fields + axes [+ eval]), read with runs and scores
/api/v1/lineage/<jobs|results|datasets>/<id>/  lineage graph (nodes, edges)
/api/v1/compare/              `?jobs=<uuid>&results=<id>`: config diff, data sets, score deltas
/api/v1/reports/<id>/         weekly reports: list, read, POST (start/regenerate a draft), PATCH (the lead's
                              text); `?subteam=&week=&state=`; POST …/publish/; GET …/agenda/?week=
"""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from evals import api as evals_api
from experiments import api as experiments_api
from lending import api as lending_api
from lending import views as lending_views
from metrics import api as metrics_api
from portal.api import views
from reports import api as reports_api
from scheduler.api import views as scheduler_views

router = DefaultRouter()
router.register("members", views.MemberViewSet, basename="member")
router.register("subteams", views.SubteamViewSet, basename="subteam")
router.register("tasks", views.TaskViewSet, basename="task")
router.register("goals", views.GoalViewSet, basename="goal")
router.register("milestones", views.MilestoneViewSet, basename="milestone")
router.register("jobs", scheduler_views.JobViewSet, basename="job")
router.register("clusters", scheduler_views.ClusterViewSet, basename="cluster")
router.register("reservations", lending_api.ReservationViewSet, basename="reservation")
router.register("pipelines", scheduler_views.PipelineViewSet, basename="pipeline")
router.register("job-templates", scheduler_views.JobTemplateViewSet, basename="job-template")
router.register("eval-results", evals_api.EvalResultViewSet, basename="eval-result")
router.register("reports", reports_api.WeeklyReportViewSet, basename="report")
router.register("datasets", experiments_api.DatasetViewSet, basename="dataset")
router.register("sweeps", experiments_api.SweepViewSet, basename="sweep")

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script as a file: the CSP allows no inline script.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("v1/metrics/series/", metrics_api.SeriesView.as_view(), name="metrics-series"),
    path("v1/metrics/keys/", metrics_api.KeysView.as_view(), name="metrics-keys"),
    path("v1/lineage/<str:what>/<str:pk>/", experiments_api.LineageView.as_view(), name="lineage"),
    path("v1/compare/", experiments_api.CompareView.as_view(), name="compare"),
    path(
        "v1/clusters/<int:pk>/availability/",
        lending_api.AvailabilityView.as_view(),
        name="lending-availability",
    ),
    path(
        "v1/calendars/<str:kind>/<str:key>/<str:token>.ics",
        lending_views.ics_feed,
        name="lending-ics",
    ),
    path("v1/", include((router.urls, "api"), namespace="api")),
]
