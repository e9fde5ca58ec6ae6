"""db.pg_array: a Python list as one PostgreSQL array constant, read back by PostgreSQL as it was."""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from alerting.base.db import pg_array


class Level(enum.IntEnum):
    HIGH = 3


class Word(enum.StrEnum):
    ACK = "ack"


CASES = [
    ("bigint", [1, None, -3, 2**62], None),
    ("bigint", [Level.HIGH], [3]),
    ("text", ['a"b', "c\\d", "{e,f}", "NULL", None, " x ", "", "ñ→😀", "a'b", "\\", '"'], None),
    ("text", [Word.ACK, "x"], ["ack", "x"]),
    ("varchar", ["{1,2}", None], None),  # an array's text inside a text array (claims' message ids)
    ("bytea", [b"\x00\x01\xff", None, b"", bytearray(b"z")], [b"\x00\x01\xff", None, b"", b"z"]),
    ("bytea", [b"\x00\\\"", None], None),
    ("boolean", [True, False, None], None),
    ("smallint", [None, None], None),
    ("timestamptz", [datetime(2026, 12, 7, 1, 2, 3, 456789, tzinfo=UTC),
                     datetime(2026, 12, 7, 1, 2, 3, tzinfo=timezone(timedelta(hours=-3))), None], None),
    ("float8", [1.5, None, -0.25], None),
    ("int", [], None),
]


@pytest.mark.parametrize(("kind", "values", "expected"), CASES)
def test_values_come_back_from_postgresql_as_they_were(db, kind, values, expected):
    got = db.execute(text(f"SELECT CAST(:a AS {kind}[])"), {"a": pg_array(values)}).scalar_one()
    got = [bytes(g) if isinstance(g, memoryview) else g for g in got]
    assert got == (values if expected is None else expected)


def test_a_value_with_no_array_text_is_refused():
    with pytest.raises(TypeError, match="no array text for dict"):
        pg_array([{"a": 1}])
