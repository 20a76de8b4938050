"""The help centre's chat page (/help/chat/): what the live chat is, the embed line for this desk, and the widget."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.templatetags.static import static


def chat_demo(request: HttpRequest) -> HttpResponse:
    # The desk as the visitor's browser reaches it: the origin the embed line points at.
    desk = request.build_absolute_uri("/").rstrip("/")
    script = request.build_absolute_uri(static("chat/widget.js"))
    embed = f'<script src="{script}" data-desk="{desk}" async></script>'
    return render(request, "chat/demo.html", {"desk": desk, "embed": embed})
