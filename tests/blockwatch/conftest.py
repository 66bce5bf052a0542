"""The storage fixtures (``db``, ``database_url``) live in tests/conftest.py, shared with the
API tests."""
