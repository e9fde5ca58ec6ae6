"""The criterion language, compiled to SQL and run on real PostgreSQL, including injection attempts."""

from __future__ import annotations

import itertools
import json

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.dialects import postgresql

from alerting.base.errors import InvalidInput
from alerting.base.models import Contact
from alerting.directory.criteria import compile_criterion, validate_criterion

_seq = itertools.count(1)


def add_contact(db, language: str = "es", **attributes: object) -> Contact:
    contact = Contact(msisdn=f"+5699{next(_seq):07d}", language=language, attributes=attributes)
    db.add(contact)
    db.flush()
    return contact


def matching(db, criterion: object) -> set[int]:
    return set(db.scalars(select(Contact.id).where(compile_criterion(criterion))))


@pytest.fixture
def people(db):
    return {
        "ana": add_contact(db, role="brigadista", district="Centro", age="34", unit=5),
        "beto": add_contact(db, role="paramédico", district="Norte", age=51, unit="5"),
        "carla": add_contact(db, language="en", role="vecina", district="Centro", age="n/a"),
        "dani": add_contact(db, role="brigadista", district="Sur", volunteer=True),
        "eva": add_contact(db, language="en", volunteer="true"),
    }


def ids(people, *names: str) -> set[int]:
    return {people[n].id for n in names}


def test_eq_and_in_select_by_attribute(db, people):
    assert matching(db, {"attr": "district", "eq": "Centro"}) == ids(people, "ana", "carla")
    assert matching(db, {"attr": "role", "in": ["brigadista", "paramédico"]}) == ids(
        people, "ana", "beto", "dani")


def test_all_any_not_combine(db, people):
    crit = {"all": [{"attr": "role", "in": ["brigadista", "paramédico"]}, {"attr": "district", "eq": "Centro"}]}
    assert matching(db, crit) == ids(people, "ana")
    either = {"any": [{"attr": "district", "eq": "Sur"}, {"attr": "district", "eq": "Norte"}]}
    assert matching(db, either) == ids(people, "beto", "dani")
    assert matching(db, {"not": {"attr": "district", "eq": "Centro"}}) == ids(people, "beto", "dani", "eva")


def test_empty_all_matches_everyone_and_empty_any_nobody(db, people):
    assert matching(db, {"all": []}) == ids(people, *people)
    assert matching(db, {"any": []}) == set()


def test_exists_true_and_false(db, people):
    assert matching(db, {"attr": "unit", "exists": True}) == ids(people, "ana", "beto")
    assert matching(db, {"attr": "district", "exists": False}) == ids(people, "eva")


def test_number_matches_its_text_form_from_csv(db, people):
    assert matching(db, {"attr": "unit", "eq": 5}) == ids(people, "ana", "beto")
    assert matching(db, {"attr": "unit", "eq": "5"}) == ids(people, "beto")
    assert matching(db, {"attr": "volunteer", "eq": True}) == ids(people, "dani", "eva")


def test_numeric_comparisons_read_numbers_and_numeric_strings_and_skip_the_rest(db, people):
    assert matching(db, {"attr": "age", "gte": 34}) == ids(people, "ana", "beto")
    assert matching(db, {"attr": "age", "gt": 34}) == ids(people, "beto")
    assert matching(db, {"attr": "age", "lt": 40.5}) == ids(people, "ana")
    assert matching(db, {"attr": "age", "lte": 51}) == ids(people, "ana", "beto")


def test_field_language(db, people):
    assert matching(db, {"field": "language", "eq": "en"}) == ids(people, "carla", "eva")
    assert matching(db, {"field": "language", "in": ["en", "fr"]}) == ids(people, "carla", "eva")


def test_json_text_is_accepted(db, people):
    assert matching(db, '{"attr": "district", "eq": "Sur"}') == ids(people, "dani")


@pytest.mark.parametrize(
    ("criterion", "field", "reason"),
    [
        ({"attr": "role", "like": "%"}, "criteria.like", "unknown operator \"like\""),
        ({"all": [{"attr": "a", "eq": 1}, {"attr": "b", "in": "x"}]}, "criteria.all[1].in", "list"),
        ({"any": {"attr": "a"}}, "criteria.any", "expected a list"),
        ({"not": {"attr": "a", "eq": 1, "in": [1]}}, "criteria.not", "several operators"),
        ({"attr": "a"}, "criteria", "exactly one operator"),
        ({"eq": 1}, "criteria.attr", "missing \"attr\""),
        ({"attr": "", "eq": 1}, "criteria.attr", "1 to 64"),
        ({"attr": ["x"], "eq": 1}, "criteria.attr", "got a list"),
        ({"attr": "age", "gt": "10"}, "criteria.gt", "expected a number"),
        ({"attr": "age", "gt": True}, "criteria.gt", "expected a number"),
        ({"attr": "a", "eq": {"$ne": 1}}, "criteria.eq", "got an object"),
        ({"attr": "a", "exists": "yes"}, "criteria.exists", "true or false"),
        ({"field": "msisdn", "eq": "+56"}, "criteria.field", "unknown field"),
        ({"all": [], "any": []}, "criteria.all", "unexpected key"),
        ({}, "criteria", "empty object"),
        ([{"attr": "a", "eq": 1}], "criteria", "expected an object"),
        ("{not json", "criteria", "not valid JSON"),
    ],
)
def test_invalid_criterion_names_the_offending_key(criterion, field, reason):
    with pytest.raises(InvalidInput) as info:
        validate_criterion(criterion)
    fields = info.value.details["fields"]
    assert field in fields, fields
    assert reason in fields[field]


def test_too_deep_or_too_large_is_refused():
    deep: dict = {"attr": "a", "eq": 1}
    for _ in range(20):
        deep = {"not": deep}
    with pytest.raises(InvalidInput, match="deeper"):
        validate_criterion(deep)
    with pytest.raises(InvalidInput, match="too large"):
        validate_criterion({"any": [{"attr": "a", "eq": i} for i in range(600)]})


INJECTIONS = [
    "x'; DROP TABLE contacts; --",
    "Centro' OR '1'='1",
    "\\'; SELECT pg_sleep(5); --",
    "role\") OR true --",
    "$$; DELETE FROM contacts; $$",
    "a\x00b",
]


@pytest.mark.parametrize("payload", INJECTIONS)
def test_injection_in_values_and_names_is_inert(db, people, payload):
    if "\x00" in payload:
        # PostgreSQL text cannot hold NUL; the driver refuses the bound value, SQL is never built from it.
        with pytest.raises(Exception):  # noqa: B017
            matching(db, {"attr": "district", "eq": payload})
        db.rollback()
        return
    before = db.scalar(select(func.count()).select_from(Contact))
    for criterion in (
        {"attr": "district", "eq": payload},
        {"attr": payload, "eq": "Centro"},
        {"attr": payload, "exists": True},
        {"attr": payload, "gt": 1},
        {"attr": "role", "in": [payload, "vecina"]},
        {"field": "language", "eq": payload},
    ):
        found = matching(db, criterion)
        assert found <= ids(people, "carla")  # only the genuine "vecina" may match
    assert db.scalar(select(func.count()).select_from(Contact)) == before
    assert db.scalar(text("SELECT to_regclass('contacts') IS NOT NULL"))


@pytest.mark.parametrize("payload", INJECTIONS[:5])
def test_compiled_sql_never_contains_user_text(payload):
    expr = compile_criterion({"all": [{"attr": payload, "eq": payload}, {"attr": "x", "in": [payload]},
                                      {"attr": payload, "lt": 3}]})
    sql = str(expr.compile(dialect=postgresql.dialect()))
    assert payload not in sql
    assert "DROP" not in sql and "DELETE" not in sql


def test_not_of_a_numeric_comparison_matches_contacts_without_the_attribute(db, people):
    assert matching(db, {"not": {"attr": "age", "gt": 40}}) == ids(people, "ana", "carla", "dani", "eva")


def test_equality_uses_the_gin_index(db, people):
    db.execute(text("SET LOCAL enable_seqscan = off"))
    expr = compile_criterion({"attr": "district", "eq": "Centro"})
    sql = select(Contact.id).where(expr).compile(dialect=postgresql.dialect(), compile_kwargs={})
    params = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in sql.params.items()}
    plan = "\n".join(r[0] for r in db.connection().exec_driver_sql("EXPLAIN " + str(sql), params))
    assert "ix_contacts_attributes" in plan
