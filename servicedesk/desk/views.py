from django.contrib.auth.views import LoginView, LogoutView
from django.http import Http404


class DeskLoginView(LoginView):
    pass


class DeskLogoutView(LogoutView):
    pass


def _missing(*args, **kwargs):
    raise Http404


inbox = ticket = ticket_reply = ticket_update = customer = attachment = _missing
