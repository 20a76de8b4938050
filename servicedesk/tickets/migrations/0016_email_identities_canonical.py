"""Email identities stored before the canonical form (``core/email_address.py``) are brought to
it, so that lookups, which now normalise, still find them: an IDN domain stored as ``xn--``
labels or in another Unicode form, a mailbox name in decomposed Unicode.

Only values with ``xn--`` or a non-ASCII character can change (every address was already
lower-cased). A value whose canonical form another identity already holds is left as it is: the
two records are two customers an agent merges; a value that is no address by today's rule is
left as well, as it still names its customer.
"""

from django.db import migrations
from django.db.models import Q

from servicedesk.core.email_address import InvalidEmailAddress, email_normalize


def identities_canonical(apps, schema_editor):
    Identity = apps.get_model("tickets", "Identity")
    candidates = Identity.objects.filter(kind="email").filter(
        Q(value__contains="xn--") | Q(value__regex=r"[^\x01-\x7f]")
    )
    for pk, value in candidates.values_list("pk", "value").iterator():
        try:
            canonical = email_normalize(value)
        except InvalidEmailAddress:
            continue
        if canonical == value or Identity.objects.filter(kind="email", value=canonical).exists():
            continue
        Identity.objects.filter(pk=pk).update(value=canonical)


class Migration(migrations.Migration):
    dependencies = [
        ("tickets", "0015_ticket_version"),
    ]

    operations = [
        migrations.RunPython(identities_canonical, migrations.RunPython.noop, elidable=True),
    ]
