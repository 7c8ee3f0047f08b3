import pytest

# The Ledger's setup steps assert; rewritten, their failures show the values compared.
pytest.register_assert_rewrite("tests.ledger.domain.ledger_under_test")
