from django.contrib import admin

from .models import Article, Category


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("name", "name_zh_hans", "slug", "position")
    prepopulated_fields = {"slug": ("name",)}


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    """Read here; articles are written in the desk (``/desk/kb/``), where the Markdown is rendered and indexed."""

    list_display = ("title", "language", "status", "category", "views", "updated_at")
    list_filter = ("status", "language", "category")
    search_fields = ("title",)

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
