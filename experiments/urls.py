from django.urls import path

from experiments import views

urlpatterns = [
    path("datasets/", views.dataset_list, name="datasets"),
    path("datasets/new/", views.dataset_create, name="dataset-create"),
    path("datasets/<int:pk>/", views.dataset_detail, name="dataset"),
    path("sweeps/", views.sweep_list, name="sweeps"),
    path("sweeps/new/", views.sweep_create, name="sweep-create"),
    path("sweeps/<int:pk>/", views.sweep_detail, name="sweep"),
    path("compare/", views.compare_view, name="compare"),
    path("lineage/jobs/<uuid:pk>/", views.lineage_job, name="lineage-job"),
    path("lineage/results/<int:pk>/", views.lineage_result, name="lineage-result"),
]
