from django.http import Http404


def _missing(*args, **kwargs):
    raise Http404


help_home = contact = contact_received = portal_home = ticket = attachment = _missing
