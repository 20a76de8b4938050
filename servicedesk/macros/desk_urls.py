"""The desk's macro and canned reply pages, mounted at ``/desk/`` by the project (servicedesk/urls.py)."""

from django.urls import path

from servicedesk.macros import views

app_name = "macros"
urlpatterns = [
    path("macros/", views.macro_list, name="macro_list"),
    path("macros/new/", views.macro_edit, name="macro_new"),
    path("macros/<int:pk>/", views.macro_edit, name="macro_edit"),
    path("macros/<int:pk>/delete/", views.macro_delete, name="macro_delete"),
    path("macros/apply/<str:reference>/", views.macro_apply_page, name="macro_apply"),
    path("macros/preview/<str:reference>/", views.macro_preview_page, name="macro_preview"),
    path("canned/", views.canned_list, name="canned_list"),
    path("canned/new/", views.canned_edit, name="canned_new"),
    path("canned/<int:pk>/", views.canned_edit, name="canned_edit"),
    path("canned/<int:pk>/delete/", views.canned_delete, name="canned_delete"),
    path("canned/<int:pk>/render/", views.canned_render, name="canned_render"),
]
