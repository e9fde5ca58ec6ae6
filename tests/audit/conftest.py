"""Fixtures for the audit tests."""

from __future__ import annotations

import pytest

from alerting.base import db as dbmod


@pytest.fixture(autouse=True)
def _valid_join_mode() -> None:
    # tests/conftest.py's `db` teardown rebinds with join_transaction_mode="conservative_savepoint",
    # which SQLAlchemy 2.1 rejects, breaking transaction() in later tests of the same process.
    # Reset it to SQLAlchemy's default until the shared fixture is fixed.
    dbmod._sessions.configure(join_transaction_mode="conditional_savepoint")
