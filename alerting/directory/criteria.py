"""The criterion language: JSON over contact attributes, compiled to SQL with bound parameters only.

A criterion is one JSON object, one of:

    {"attr": "district", "eq": "Centro"}          attribute equals (JSON value; see below)
    {"attr": "role", "in": ["brigadista", "paramédico"]}
    {"attr": "unit", "exists": true}              attribute present (false: absent)
    {"attr": "age", "gte": 18}                    numeric lt / lte / gt / gte
    {"field": "language", "eq": "en"}             a contact column (language, verification_state)
    {"not": {...}}
    {"all": [{...}, ...]}                          AND (an empty list matches everyone)
    {"any": [{...}, ...]}                          OR  (an empty list matches nobody)

`eq` and `in` compare JSON values with `@>`, so the GIN index on contacts.attributes serves them.
Attributes imported from CSV are strings, so a number or boolean also matches its text form:
`{"attr": "unit", "eq": 5}` matches 5 and "5". Numeric comparisons read numbers and numeric
strings; an attribute that is neither never matches (it does not make the query fail).

Every value, attribute name and list item reaches PostgreSQL as a bound parameter; nothing from
the criterion is ever pasted into SQL text. Errors raise InvalidInput whose `fields` names the
offending key by its path, e.g. {"criteria.all[1].in": "expected a list of values"}.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Numeric, and_, case, false, func, literal, not_, or_, true
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement

from alerting.base.errors import InvalidInput
from alerting.base.json_limits import parse_json
from alerting.base.models import Contact

MAX_DEPTH = 12
MAX_CRITERION_BYTES = 64 * 1024  # 500 conditions of 1,000 values fit; a criterion is typed, not uploaded
MAX_NODES = 500
MAX_IN_VALUES = 1000
MAX_NAME_LEN = 64
COMPARISONS = ("lt", "lte", "gt", "gte")
VALUE_OPERATORS = ("eq", "in", "exists", *COMPARISONS)
FIELDS = {"language": Contact.language, "verification_state": Contact.verification_state}
_NUMERIC = r"^\s*-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?\s*$"


def compile_criterion(criterion: object, *, path: str = "criteria") -> ColumnElement[bool]:
    """A SQL boolean over `contacts` for `criterion`. Raises InvalidInput naming the bad key's path.

    The result refers to the `contacts` table (Contact); use it in any SELECT over contacts.
    """
    if isinstance(criterion, str):
        criterion = parse_json(criterion, field=path, max_bytes=MAX_CRITERION_BYTES)
    counter = [0]
    return _compile(criterion, path, 0, counter)


def validate_criterion(criterion: object, *, path: str = "criteria") -> None:
    """Raise InvalidInput (naming the key) if `criterion` is not a valid criterion; else nothing."""
    compile_criterion(criterion, path=path)


def _bad(path: str, reason: str) -> InvalidInput:
    return InvalidInput(f"{path}: {reason}", fields={path: reason})


def _compile(node: object, path: str, depth: int, counter: list[int]) -> ColumnElement[bool]:
    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise _bad(path, f"criterion too large (more than {MAX_NODES} conditions)")
    if depth > MAX_DEPTH:
        raise _bad(path, f"criterion nested deeper than {MAX_DEPTH} levels")
    if not isinstance(node, dict):
        raise _bad(path, f"expected an object such as {{\"attr\": \"role\", \"eq\": \"x\"}}, got {_kind(node)}")
    if not node:
        raise _bad(path, "empty object: expected attr/field with an operator, or not/any/all")
    keys = set(node)
    for combinator in ("not", "any", "all"):
        if combinator in keys:
            if len(keys) != 1:
                extra = sorted(keys - {combinator})
                raise _bad(f"{path}.{extra[0]}", f"unexpected key beside \"{combinator}\"")
            return _combine(combinator, node[combinator], f"{path}.{combinator}", depth, counter)
    if "attr" in keys and "field" in keys:
        raise _bad(f"{path}.field", "use either \"attr\" or \"field\", not both")
    subject_key = "attr" if "attr" in keys else "field" if "field" in keys else None
    if subject_key is None:
        unknown = sorted(keys - set(VALUE_OPERATORS))
        if unknown:
            raise _bad(f"{path}.{unknown[0]}", f"unknown operator \"{unknown[0]}\"; expected one of "
                       f"{', '.join(('attr', 'field', 'not', 'any', 'all', *VALUE_OPERATORS))}")
        raise _bad(f"{path}.attr", "missing \"attr\" (the attribute the condition is about)")
    operators = keys - {subject_key}
    unknown = sorted(operators - set(VALUE_OPERATORS))
    if unknown:
        raise _bad(f"{path}.{unknown[0]}",
                   f"unknown operator \"{unknown[0]}\"; expected one of {', '.join(VALUE_OPERATORS)}")
    if len(operators) != 1:
        raise _bad(path, "expected exactly one operator (eq, in, exists, lt, lte, gt, gte)"
                   if not operators else f"several operators ({', '.join(sorted(operators))}): use \"all\"")
    (op,) = operators
    name = node[subject_key]
    name_path = f"{path}.{subject_key}"
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LEN:
        raise _bad(name_path, f"expected a name of 1 to {MAX_NAME_LEN} characters, got {_kind(name)}")
    if subject_key == "field":
        return _field_condition(name, name_path, op, node[op], f"{path}.{op}")
    return _attr_condition(name, op, node[op], f"{path}.{op}")


def _combine(combinator: str, value: object, path: str, depth: int, counter: list[int]) -> ColumnElement[bool]:
    if combinator == "not":
        return not_(_compile(value, path, depth + 1, counter))
    if not isinstance(value, list):
        raise _bad(path, f"expected a list of conditions, got {_kind(value)}")
    parts = [_compile(item, f"{path}[{i}]", depth + 1, counter) for i, item in enumerate(value)]
    if combinator == "all":
        return and_(true(), *parts) if parts else true()
    return or_(false(), *parts) if parts else false()


def _attr_condition(name: str, op: str, value: object, path: str) -> ColumnElement[bool]:
    attrs = Contact.attributes
    if op == "exists":
        if not isinstance(value, bool):
            raise _bad(path, f"expected true or false, got {_kind(value)}")
        present = attrs.has_key(literal(name))
        return present if value else not_(present)
    if op == "eq":
        return _equals(name, _scalar(value, path))
    if op == "in":
        if not isinstance(value, list) or not value:
            raise _bad(path, f"expected a non-empty list of values, got {_kind(value)}")
        if len(value) > MAX_IN_VALUES:
            raise _bad(path, f"more than {MAX_IN_VALUES} values")
        items = [_scalar(item, f"{path}[{i}]") for i, item in enumerate(value)]
        return or_(*[_equals(name, item) for item in items])
    number = _number(value, path)
    text_value = attrs[literal(name)].astext
    # CASE guards the cast: a non-numeric attribute yields NULL (no match), never a query error.
    as_number = case((text_value.regexp_match(literal(_NUMERIC)), text_value.cast(Numeric)), else_=None)
    return _compare(as_number, op, literal(number, Numeric))


def _field_condition(name: str, name_path: str, op: str, value: object, path: str) -> ColumnElement[bool]:
    column = FIELDS.get(name)
    if column is None:
        raise _bad(name_path, f"unknown field \"{name}\"; expected one of {', '.join(sorted(FIELDS))}")
    if op == "eq":
        if not isinstance(value, str):
            raise _bad(path, f"expected a string, got {_kind(value)}")
        return _definite(column == literal(value))
    if op == "in":
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise _bad(path, "expected a non-empty list of strings")
        return _definite(column.in_([literal(v) for v in value[:MAX_IN_VALUES]]))
    if op == "exists":
        if not isinstance(value, bool):
            raise _bad(path, f"expected true or false, got {_kind(value)}")
        return column.is_not(None) if value else column.is_(None)
    raise _bad(path, f"\"{op}\" does not apply to field \"{name}\" (use eq, in or exists)")


def _equals(name: str, value: str | int | float | bool | None) -> ColumnElement[bool]:
    forms: list[object] = [value]
    if isinstance(value, bool):
        forms.append("true" if value else "false")
    elif isinstance(value, int | float):
        forms.append(_number_text(value))
    return or_(*[Contact.attributes.op("@>", is_comparison=True)(literal({name: form}, JSONB)) for form in forms])


def _compare(left: ColumnElement[Any], op: str, right: ColumnElement[Any]) -> ColumnElement[bool]:
    result = {"lt": left < right, "lte": left <= right, "gt": left > right, "gte": left >= right}[op]
    return _definite(result)


def _definite(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    # Every leaf is TRUE or FALSE, never NULL, so "not" means what it says: {"not": {"attr": "age",
    # "gt": 30}} matches a contact without an age, instead of SQL's NULL swallowing the row.
    return func.coalesce(condition, false())


def _scalar(value: object, path: str) -> str | int | float | bool | None:
    if value is None or isinstance(value, str | bool | int | float):
        if isinstance(value, float) and value != value:  # NaN equals nothing
            raise _bad(path, "NaN is not a value")
        return value
    raise _bad(path, f"expected a string, number, boolean or null, got {_kind(value)}")


def _number(value: object, path: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(path, f"expected a number, got {_kind(value)}")
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        raise _bad(path, "expected a finite number")
    return Decimal(str(value))


def _number_text(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def matches(criterion: dict[str, Any] | None) -> ColumnElement[bool]:
    """`compile_criterion`, with None meaning everyone."""
    return true() if criterion is None else compile_criterion(criterion)
