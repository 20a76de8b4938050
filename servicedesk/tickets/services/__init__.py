"""Services: every state change of the domain is one function here.

Views, API, tasks, channel adapters and importers all call these. See
docs/architecture.md.
"""
