"""Web pages of the scheduler, included by config/urls.py under the `scheduler` namespace."""

from django.urls import path

from scheduler.views import accounts, clusters, jobs, training

urlpatterns = [
    path("jobs/", jobs.job_list, name="jobs"),
    path("jobs/new/", jobs.job_create, name="job-create"),
    path("jobs/preview/", jobs.job_preview, name="job-preview"),
    path("jobs/train/", training.training_create, name="training-create"),
    path("jobs/train/preview/", training.training_preview, name="training-preview"),
    path("jobs/templates/<int:pk>/delete/", training.template_delete, name="template-delete"),
    path("pipelines/", training.pipeline_list, name="pipelines"),
    path("pipelines/new/", training.pipeline_create, name="pipeline-create"),
    path("pipelines/<int:pk>/", training.pipeline_detail, name="pipeline"),
    path("jobs/<uuid:pk>/", jobs.job_detail, name="job"),
    path("jobs/<uuid:pk>/cancel/", jobs.job_cancel, name="job-cancel"),
    path("jobs/<uuid:pk>/resubmit/", jobs.job_resubmit, name="job-resubmit"),
    path("jobs/<uuid:pk>/fix/", jobs.job_fix, name="job-fix"),
    path("jobs/<uuid:pk>/logs/<str:stream>/", jobs.job_log, name="job-log"),
    path("clusters/", clusters.cluster_list, name="clusters"),
    path("clusters/<int:pk>/", clusters.cluster_detail, name="cluster"),
    path("clusters/<int:pk>/host-key/", clusters.cluster_check_host_key, name="cluster-host-key"),
    path("clusters/<int:pk>/trust/", clusters.cluster_trust_host_key, name="cluster-trust"),
    path("clusters/accounts/<int:pk>/key/", accounts.account_key, name="account-key"),
    path("clusters/accounts/<int:pk>/test-login/", accounts.account_test_login, name="account-test-login"),
]
