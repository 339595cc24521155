from textkit import normalize_whitespace, word_count


def test_normalize_whitespace_collapses_runs():
    assert normalize_whitespace("  a \t b\n\nc  ") == "a b c"


def test_word_count():
    assert word_count("one two  three") == 3
    assert word_count("") == 0
