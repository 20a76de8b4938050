"""Macros and canned replies of the agent workspace (docs/macros.md).

A macro is an ordered list of actions applied to a ticket through the ticket
services in one transaction; a canned reply is a text inserted into a reply.
Both are personal, per queue or global (``access.py``), and both fill in
placeholders through the sandboxed templates of ``templating.py``.
"""
