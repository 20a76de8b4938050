"""Outbound webhooks: signed JSON events sent to integrators' endpoints, retried for a day and more.

See docs/webhooks.md for the events, payloads, signature and delivery rules.
"""
