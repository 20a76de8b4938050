"""The availability switch in the workspace header: a plain form that comes back to the page."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from servicedesk.accounts.auth import signed_in_user
from servicedesk.accounts.roles import is_agent
from servicedesk.core.errors import ApplicationError
from servicedesk.routing.models import Availability
from servicedesk.routing.services import agent_availability_set


class AvailabilityForm(forms.Form):
    availability = forms.ChoiceField(label=gettext_lazy("Availability"), choices=Availability.choices)
    next = forms.CharField(required=False, widget=forms.HiddenInput)


@require_POST
def availability_set(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect_to_login(reverse("desk:inbox"))
    if not is_agent(request.user):
        raise Http404
    form = AvailabilityForm(request.POST)
    target = reverse("desk:inbox")
    if form.is_valid():
        following = form.cleaned_data["next"]
        if following and url_has_allowed_host_and_scheme(
            following,
            allowed_hosts={request.get_host()},
            require_https=request.is_secure(),
        ):
            target = following
        try:
            profile = agent_availability_set(
                agent=signed_in_user(request),
                availability=form.cleaned_data["availability"],
            )
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(
                request,
                _("You are now %(availability)s.") % {"availability": profile.get_availability_display()},
            )
        return redirect(target)
    messages.error(request, _("Choose online, away or offline."))
    return redirect(target)
