from channels_app.web import ratelimit


def test_webform_limits_from_settings(settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "WEBFORM_RATE_PER_IP": 2, "WEBFORM_RATE_PER_EMAIL": 3}

    results = [ratelimit.webform_rate_exceeded(client_ip="192.0.2.9", email=f"p{n}@example.com") for n in range(3)]
    by_email = [ratelimit.webform_rate_exceeded(client_ip=f"192.0.2.{n}", email="same@example.com") for n in range(4)]

    assert results == [False, False, True]
    assert by_email == [False, False, False, True]


def test_portal_reply_limits_from_settings(settings):
    settings.SERVICEDESK = {**settings.SERVICEDESK, "PORTAL_REPLY_RATE_PER_TICKET": 2, "PORTAL_REPLY_RATE_PER_IP": 3}

    per_ticket = [ratelimit.portal_reply_rate_exceeded(ticket_id=7, client_ip=f"192.0.2.{n}") for n in range(3)]
    per_ip = [ratelimit.portal_reply_rate_exceeded(ticket_id=n, client_ip="198.51.100.1") for n in range(10, 14)]

    assert per_ticket == [False, False, True]
    assert per_ip == [False, False, False, True]
