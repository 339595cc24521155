"""Prompt templates of the four roles and the repair request (``*.md``, ``$name`` fields)."""
