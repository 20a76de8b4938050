"""Configuration of the community: its categories (who reads them, support targets, the escalation queue)."""

from django.contrib import admin

from .models import Category


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "visibility", "organization", "is_support", "target_hours", "position")
    list_filter = ("visibility", "is_support")
    search_fields = ("name", "name_zh_hans", "slug")
    readonly_fields = ("topics_count", "posts_count", "last_post_at")
