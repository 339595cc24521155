"""Small text helpers."""

from .core import normalize_whitespace, word_count

__all__ = ["normalize_whitespace", "word_count"]
