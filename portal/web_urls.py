from django.contrib.auth import views as auth_views
from django.urls import path

from portal.views import goals, learnings, members, overview, subteams, tasks, timeline

urlpatterns = [
    path("", overview.overview, name="overview"),
    path("healthz", overview.healthz, name="healthz"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(
            template_name="registration/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("subteams/", subteams.subteam_list, name="subteams"),
    path("subteams/<slug:slug>/", subteams.subteam_detail, name="subteam"),
    path("subteams/<slug:slug>/members/add/", subteams.membership_add, name="membership-add"),
    path("memberships/<int:pk>/end/", subteams.membership_end, name="membership-end"),
    path("memberships/<int:pk>/role/", subteams.membership_role, name="membership-role"),
    path("tasks/", tasks.board, name="tasks"),
    path("tasks/new/", tasks.task_create, name="task-create"),
    path("tasks/<int:pk>/", tasks.task_detail, name="task"),
    path("tasks/<int:pk>/edit/", tasks.task_edit, name="task-edit"),
    path("tasks/<int:pk>/move/", tasks.task_move, name="task-move"),
    path("tasks/<int:pk>/delete/", tasks.task_delete, name="task-delete"),
    path("learnings/", learnings.learning_list, name="learnings"),
    path("goals/", goals.goal_list, name="goals"),
    path("goals/new/", goals.goal_create, name="goal-create"),
    path("goals/<int:pk>/", goals.goal_detail, name="goal"),
    path("goals/<int:pk>/edit/", goals.goal_edit, name="goal-edit"),
    path("goals/<int:pk>/delete/", goals.goal_delete, name="goal-delete"),
    path("timeline/", timeline.timeline, name="timeline"),
    path("milestones/new/", timeline.milestone_create, name="milestone-create"),
    path("milestones/<int:pk>/edit/", timeline.milestone_edit, name="milestone-edit"),
    path("milestones/<int:pk>/toggle/", timeline.milestone_toggle, name="milestone-toggle"),
    path("milestones/<int:pk>/delete/", timeline.milestone_delete, name="milestone-delete"),
    path("members/", members.member_list, name="members"),
    path("members/<str:username>/", members.member_detail, name="member"),
    path("members/<str:username>/edit/", members.member_edit, name="member-edit"),
]
