"""Text helpers."""


def normalize_whitespace(text: str) -> str:
    """Collapse runs of whitespace into single spaces and strip the ends."""
    return " ".join(text.split())


def word_count(text: str) -> int:
    """The number of whitespace-separated words in ``text``."""
    return len(text.split())
