"""Forms of the knowledge base: an agent's article, a reader's vote, an image upload."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from .models import LANGUAGES, Article, ArticleStatus, Category
from .services import BODY_MAX, REASON_MAX, TITLE_MAX, ArticleInput

IMAGE_MAX_BYTES = 5 * 1024 * 1024


class ArticleForm(forms.Form):
    title = forms.CharField(label=_("Title"), max_length=TITLE_MAX)
    body = forms.CharField(
        label=_("Article (Markdown)"),
        required=False,
        max_length=BODY_MAX,
        widget=forms.Textarea(attrs={"rows": 18, "class": "kb-body"}),
    )
    language = forms.ChoiceField(label=_("Language"), choices=LANGUAGES)
    status = forms.ChoiceField(label=_("Status"), choices=ArticleStatus.choices)
    category = forms.ModelChoiceField(
        label=_("Category"), queryset=Category.objects.all(), required=False, empty_label=_("No category")
    )
    translation_of = forms.ModelChoiceField(
        label=_("Translation of"),
        queryset=Article.objects.filter(translation_of__isnull=True).order_by("title"),
        required=False,
        empty_label=_("None: this is an original"),
    )
    publish_at = forms.DateTimeField(
        label=_("Publish from"), required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    related = forms.ModelMultipleChoiceField(
        label=_("Related articles"), queryset=Article.objects.order_by("title"), required=False
    )

    def __init__(self, *args: Any, article: Article | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if article is not None:
            self.fields["translation_of"].queryset = (  # type: ignore[attr-defined]
                Article.objects.filter(translation_of__isnull=True).exclude(pk=article.pk).order_by("title")
            )
            self.fields["related"].queryset = Article.objects.exclude(pk=article.pk).order_by("title")  # type: ignore[attr-defined]

    def article_input(self) -> ArticleInput:
        data = self.cleaned_data
        return ArticleInput(
            title=data["title"],
            body=data["body"],
            language=data["language"],
            status=data["status"],
            category=data["category"],
            translation_of=data["translation_of"],
            publish_at=data["publish_at"],
            related=tuple(data["related"]),
        )


class VoteForm(forms.Form):
    helpful = forms.TypedChoiceField(choices=[("yes", _("Yes")), ("no", _("No"))], coerce=lambda v: v == "yes")
    reason = forms.CharField(label=_("What was missing?"), required=False, max_length=REASON_MAX)


_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
}


def image_type(head: bytes) -> str | None:
    """The image type the file's first bytes show (not what the browser claims), else None."""
    for signature, content_type in _SIGNATURES.items():
        if head.startswith(signature):
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


class ImageForm(forms.Form):
    image = forms.FileField(label=_("Image"))

    def clean_image(self) -> Any:
        image = self.cleaned_data["image"]
        if image.size > IMAGE_MAX_BYTES:
            raise forms.ValidationError(_("An image has at most 5 MB."))
        head = image.read(16)
        image.seek(0)
        found = image_type(head)
        if found is None:
            raise forms.ValidationError(_("Images in PNG, JPEG, GIF or WebP only."))
        image.sniffed_type = found
        return image
