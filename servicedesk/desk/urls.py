from django.urls import include, path

from servicedesk.desk import drafts, inbox, merging, views

app_name = "desk"
urlpatterns = [
    path("login/", views.DeskLoginView.as_view(), name="login"),
    path("logout/", views.DeskLogoutView.as_view(), name="logout"),
    path("", views.inbox, name="inbox"),
    path("bulk/", inbox.bulk_submit, name="bulk"),
    path("bulk/jobs/<int:pk>/", inbox.bulk_job_status, name="bulk_job"),
    path("bulk/jobs/<int:pk>/cancel/", inbox.bulk_job_cancel, name="bulk_job_cancel"),
    path("views/", inbox.view_create, name="view_create"),
    path("views/counts/", inbox.view_counts_json, name="view_counts"),
    path("views/<int:pk>/rename/", inbox.view_rename, name="view_rename"),
    path("views/<int:pk>/delete/", inbox.view_delete, name="view_delete"),
    path("tickets/<str:reference>/", views.ticket, name="ticket"),
    path("tickets/<str:reference>/reply/", views.ticket_reply, name="ticket_reply"),
    path("tickets/<str:reference>/update/", views.ticket_update, name="ticket_update"),
    path("tickets/<str:reference>/draft/", drafts.draft_save, name="draft_save"),
    path("tickets/<str:reference>/draft/discard/", drafts.draft_discard, name="draft_discard"),
    path("tickets/<str:reference>/held/<int:held_id>/", drafts.held_reply_state_json, name="held_reply_state"),
    path("tickets/<str:reference>/held/<int:held_id>/undo/", drafts.held_reply_undo, name="held_reply_undo"),
    path("tickets/<str:reference>/held/<int:held_id>/discard/", drafts.held_reply_discard, name="held_reply_discard"),
    path("tickets/<str:reference>/messages/<int:message_id>/resend/", views.message_resend, name="message_resend"),
    path("tickets/<str:reference>/spam/", views.ticket_spam, name="ticket_spam"),
    path("tickets/<str:reference>/delete/", views.ticket_delete, name="ticket_delete"),
    path("tickets/<str:reference>/merge/", merging.ticket_merge_page, name="ticket_merge"),
    path("tickets/<str:reference>/messages/<int:message_id>/split/", merging.message_split_page, name="message_split"),
    path("customers/<int:pk>/", views.customer, name="customer"),
    path("customers/<int:pk>/org-manager/", views.customer_org_manager_set, name="customer_org_manager_set"),
    path("customers/<int:pk>/merge-into/<int:target_pk>/", views.customer_merge, name="customer_merge"),
    path("customers/merges/<int:merge_pk>/undo/", views.customer_unmerge, name="customer_unmerge"),
    path(
        "customers/<int:pk>/identities/<int:identity_pk>/clear-bouncing/",
        views.customer_identity_bouncing_clear,
        name="customer_identity_bouncing_clear",
    ),
    path("attachments/<str:key>/", views.attachment, name="attachment"),
    path("quarantine/", include("channels_app.email.urls")),
]
