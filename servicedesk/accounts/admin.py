from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from servicedesk.accounts.models import User
from servicedesk.accounts.signin import LimitedAdminAuthenticationForm

admin.site.login_form = LimitedAdminAuthenticationForm


@admin.register(User)
class ServiceDeskUserAdmin(UserAdmin):
    fieldsets = (*UserAdmin.fieldsets, ("Service desk", {"fields": ("display_name", "language", "time_zone")}))  # type: ignore[misc]
    list_display = ("username", "email", "display_name", "is_staff", "is_active")
