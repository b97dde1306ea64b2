"""The small checker combinators the OpenLineage validator is written in.

A checker is ``check(value, pointer)``: it returns when the value fits and
raises :class:`Bad` naming the JSON pointer of the first misfit otherwise.

Each combinator also registers a predicate, :func:`fast` ``(check)(value) -> bool``,
that answers the same question without building a pointer for every field it
passes: most events are valid, so validation runs the predicate first and the
checker only to say where an invalid event goes wrong.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "Bad",
    "Check",
    "Predicate",
    "all_of",
    "any_of",
    "arr",
    "boolean",
    "const",
    "enum",
    "esc",
    "fast",
    "integer",
    "lazy",
    "matches",
    "minimum",
    "number",
    "obj",
    "one_of",
    "short",
    "string",
    "uuid_str",
    "want",
    "with_fast",
]


class Bad(Exception):
    """A value that does not fit: where (JSON pointer) and why."""

    def __init__(self, pointer: str, message: str) -> None:
        super().__init__(message)
        self.pointer = pointer
        self.message = message


Check = Callable[[Any, str], None]
"""A checker: returns if ``value`` fits, else raises :class:`Bad` at ``pointer``."""
Predicate = Callable[[Any], bool]
"""Whether a value fits, exactly as its checker judges, without saying where it does not."""

_PREDICATES: dict[Check, Predicate] = {}


def with_fast(check: Check, ok: Predicate) -> Check:
    """Register ``ok`` as the predicate of ``check``; returns ``check``."""
    _PREDICATES[check] = ok
    return check


def fast(check: Check) -> Predicate:
    """The predicate of a checker (for one without a registered predicate: the checker itself)."""
    ok = _PREDICATES.get(check)
    if ok is not None:
        return ok

    def slow(value: Any) -> bool:
        return matches(check, value, "") is None

    return slow


_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def esc(key: str) -> str:
    if "~" in key or "/" in key:
        return key.replace("~", "~0").replace("/", "~1")
    return key


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def want(kind: str, value: Any, p: str) -> None:
    raise Bad(p, f"expected {kind}, got {_type_name(value)} {short(value)}")


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def string(value: Any, p: str) -> None:
    if not isinstance(value, str):
        want("a string", value, p)


def _is_integer(value: Any) -> bool:
    return not isinstance(value, bool) and (
        isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    )


def integer(value: Any, p: str) -> None:
    # JSON Schema's integer is a number with no fraction: 3.0 counts, True does not.
    if not _is_integer(value):
        want("an integer", value, p)


def number(value: Any, p: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        want("a number", value, p)


def boolean(value: Any, p: str) -> None:
    if not isinstance(value, bool):
        want("a boolean", value, p)


with_fast(string, str.__instancecheck__)  # a C call: most fields are strings
with_fast(integer, _is_integer)
with_fast(number, lambda v: not isinstance(v, bool) and isinstance(v, int | float))
with_fast(boolean, bool.__instancecheck__)


def uuid_str(value: Any, p: str) -> None:
    if not isinstance(value, str):
        want("a UUID string", value, p)
    if not _UUID.match(value):
        raise Bad(
            p, f"expected a UUID such as 0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b, got {short(value)}"
        )


with_fast(uuid_str, lambda v: isinstance(v, str) and _UUID.match(v) is not None)


def minimum(limit: int) -> Check:
    def check(value: Any, p: str) -> None:
        integer(value, p)
        if value < limit:
            raise Bad(p, f"must be at least {limit}, got {value}")

    return with_fast(check, lambda v: _is_integer(v) and v >= limit)


def enum(*values: str) -> Check:
    allowed = frozenset(values)

    def check(value: Any, p: str) -> None:
        if not isinstance(value, str) or value not in allowed:
            raise Bad(p, f"must be one of {', '.join(values)}; got {short(value)}")

    return with_fast(check, lambda v: isinstance(v, str) and v in allowed)


def const(expected: str) -> Check:
    def check(value: Any, p: str) -> None:
        if value != expected:
            raise Bad(p, f"must be {expected!r}, got {short(value)}")

    return with_fast(check, lambda v: bool(v == expected))


def arr(item: Check) -> Check:
    def check(value: Any, p: str) -> None:
        if not isinstance(value, list):
            want("an array", value, p)
        for i, v in enumerate(value):
            item(v, f"{p}/{i}")

    item_ok = fast(item)

    def ok(value: Any) -> bool:
        return isinstance(value, list) and all(map(item_ok, value))

    return with_fast(check, ok)


def obj(
    props: Mapping[str, Check] | None = None,
    required: tuple[str, ...] = (),
    *,
    extra: Check | None = None,
    closed: bool = False,
    together: tuple[str, ...] = (),
) -> Check:
    """An object: typed known ``props``, ``required`` names, ``extra`` for any other key.

    ``closed`` refuses unknown keys; ``together`` names keys that need each other.
    """
    known = {key: (sub, "/" + esc(key)) for key, sub in (props or {}).items()}
    spec = (
        _ObjSpec(dict(props or {}), required)
        if extra is None and not (closed or together)
        else None
    )

    def check(value: Any, p: str) -> None:
        if not isinstance(value, dict):
            want("an object", value, p)
        for name in required:
            if name not in value:
                raise Bad(f"{p}/{esc(name)}", "required field is missing")
        for name in together:
            if name in value:
                for other in together:
                    if other not in value:
                        raise Bad(f"{p}/{esc(other)}", f"required when {name!r} is given")
        for key, v in value.items():
            entry = known.get(key)
            if entry is not None:
                entry[0](v, p + entry[1])
            elif closed:
                raise Bad(f"{p}/{esc(key)}", "unknown field (the object allows no others)")
            elif extra is not None:
                extra(v, f"{p}/{esc(key)}")

    known_ok = {key: fast(sub) for key, (sub, _) in known.items()}
    extra_ok = fast(extra) if extra is not None else None

    def ok(value: Any) -> bool:
        if not isinstance(value, dict):
            return False
        for name in required:
            if name not in value:
                return False
        if together:
            present = [name in value for name in together]
            if any(present) and not all(present):
                return False
        for key, v in value.items():
            sub = known_ok.get(key)
            if sub is None:
                if closed or (extra_ok is not None and not extra_ok(v)):
                    return False
            elif not sub(v):
                return False
        return True

    if spec is not None:
        _OBJ_SPECS[check] = spec
    return with_fast(check, ok)


class _ObjSpec:
    """What a plain :func:`obj` checker (no ``extra``, ``closed`` or ``together``) allows."""

    def __init__(self, props: dict[str, Check], required: tuple[str, ...]) -> None:
        self.props = props
        self.required = required


_OBJ_SPECS: dict[Check, _ObjSpec] = {}


def _merged(checks: tuple[Check, ...]) -> Predicate | None:
    """One object predicate for plain object checkers that must all pass, if they can merge.

    They can when no property is typed by two of them: a value then passes them all
    exactly when it passes one object with all their properties and required names,
    and the merged predicate walks the value once.
    """
    specs = [_OBJ_SPECS.get(c) for c in checks]
    props: dict[str, Check] = {}
    required: list[str] = []
    for spec in specs:
        if spec is None or props.keys() & spec.props.keys():
            return None
        props.update(spec.props)
        required.extend(r for r in spec.required if r not in required)
    return fast(obj(props, tuple(required)))


def all_of(*checks: Check) -> Check:
    def check(value: Any, p: str) -> None:
        for c in checks:
            c(value, p)

    merged = _merged(checks)
    if merged is not None:
        return with_fast(check, merged)
    oks = [fast(c) for c in checks]
    if len(oks) == 2:
        first, second = oks

        def ok(value: Any) -> bool:
            return first(value) and second(value)

        return with_fast(check, ok)

    def ok_all(value: Any) -> bool:
        return all(each(value) for each in oks)

    return with_fast(check, ok_all)


def matches(c: Check, value: Any, p: str) -> Bad | None:
    try:
        c(value, p)
    except Bad as bad:
        return bad
    return None


def one_of(*alts: Check, what: str) -> Check:
    def check(value: Any, p: str) -> None:
        errors = [matches(a, value, p) for a in alts]
        passed = sum(e is None for e in errors)
        if passed == 1:
            return
        if passed > 1:
            raise Bad(p, f"matches more than one kind of {what}; it must match exactly one")
        deepest = max((e for e in errors if e is not None), key=lambda e: len(e.pointer))
        raise Bad(deepest.pointer, f"not a valid {what}: {deepest.message}")

    oks = [fast(a) for a in alts]
    return with_fast(check, lambda v: sum(ok(v) for ok in oks) == 1)


def any_of(*alts: Check, what: str) -> Check:
    def check(value: Any, p: str) -> None:
        errors = [matches(a, value, p) for a in alts]
        if any(e is None for e in errors):
            return
        deepest = max((e for e in errors if e is not None), key=lambda e: len(e.pointer))
        raise Bad(deepest.pointer, f"not a valid {what}: {deepest.message}")

    oks = [fast(a) for a in alts]
    return with_fast(check, lambda v: any(ok(v) for ok in oks))


def lazy(get: Callable[[], Check]) -> Check:
    def check(value: Any, p: str) -> None:
        get()(value, p)

    return with_fast(check, lambda v: fast(get())(v))
