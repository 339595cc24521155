"""The block tests use the suite-wide Prefect API and OpenBao fixtures (tests/conftest.py)."""
