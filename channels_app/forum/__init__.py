"""The community forum at ``/community/`` (docs/community.md)."""
