"""The small checker combinators the OpenLineage validator is written in.

A checker is ``check(value, pointer)``: it returns when the value fits and
raises :class:`Bad` naming the JSON pointer of the first misfit otherwise.

Each combinator also registers a predicate, :func:`fast` ``(check)(value) -> bool``,
that answers the same question without building a pointer for every field it
passes: most events are valid, so validation runs the predicate first and the
checker only to say where an invalid event goes wrong.

Most combinators can also state their rule as a msgspec type, :func:`msgspec_type`:
a typed decode of JSON bytes then judges a whole facet in C.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ForwardRef, Literal

import msgspec

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
    "msgspec_type",
    "number",
    "obj",
    "one_of",
    "short",
    "string",
    "uuid_str",
    "want",
    "with_fast",
    "with_type",
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


# -- the same rules as msgspec types ------------------------------------------------------
#
# A combinator may register a typer: given the :class:`_Typing` in progress, it returns a
# msgspec type that decodes only JSON its checker accepts, or None when msgspec types
# cannot say the rule (one_of, any_of, together, an object with both properties and
# ``extra``). The converse nearly holds too: msgspec refuses ``3.0`` for an ``int``
# that JSON Schema (and the checker) accepts, so a failed typed decode proves nothing
# and callers fall back to the predicate.

Typer = Callable[["_Typing"], Any]
"""Returns a checker's msgspec type (``None`` for none), building its parts through the _Typing."""

_TYPERS: dict[Check, Typer] = {}
_struct_names = itertools.count()


def with_type(check: Check, typer: Typer) -> Check:
    """Register ``typer`` as the way to state ``check`` as a msgspec type; returns ``check``."""
    _TYPERS[check] = typer
    return check


def msgspec_type(check: Check) -> Any | None:
    """A msgspec type whose typed decode accepts only JSON ``check`` accepts; None if there is none.

    Built afresh on every call (callers keep the decoder they make of it).
    """
    return _Typing().type_of(check)


class _Typing:
    """One build of msgspec types: struct classes for objects, and names for recursion.

    A checker reached again through :func:`lazy` while its own struct is being built
    becomes a forward reference, which msgspec resolves (when a decoder is made) from
    the attributes of the struct class holding it: the struct is set there once built.
    """

    def __init__(self) -> None:
        self.building: dict[Check, str] = {}
        """Struct names of the object checkers being built, for references back to them."""
        self.refs: list[set[str]] = []
        """Per struct being built: the names its own fields refer to."""
        self.holders: dict[str, list[type]] = {}
        """Per name: the struct classes whose fields refer to it."""

    def type_of(self, check: Check) -> Any | None:
        typer = _TYPERS.get(check)
        return typer(self) if typer is not None else None

    def reference(self, check: Check) -> Any | None:
        """The type of ``check``, or a reference to it when its struct is being built."""
        name = self.building.get(check)
        if name is None:
            return self.type_of(check)
        self.refs[-1].add(name)
        return ForwardRef(name)

    def struct(
        self, check: Check, props: Mapping[str, Check], required: tuple[str, ...], closed: bool
    ) -> Any | None:
        """A struct with a field per property (by its JSON name), None if a property has no type."""
        name = f"_Typed{next(_struct_names)}"
        self.building[check] = name
        self.refs.append(set())
        try:
            fields: list[tuple[str, Any, Any]] = []
            for i, (key, sub) in enumerate(props.items()):
                tp = self.type_of(sub)
                if tp is None:
                    return None
                if key in required:
                    fields.append((f"f{i}", tp, msgspec.field(name=key)))
                else:
                    fields.append((f"f{i}", tp, msgspec.field(default=None, name=key)))
            missing = [key for key in required if key not in props]
            for j, key in enumerate(missing):  # required, of any type
                fields.append((f"r{j}", Any, msgspec.field(name=key)))
            cls = msgspec.defstruct(
                name, fields, kw_only=True, forbid_unknown_fields=closed, module=__name__, gc=False
            )
        finally:
            refs = self.refs.pop()
            del self.building[check]
        for ref in refs:
            self.holders.setdefault(ref, []).append(cls)
        for holder in self.holders.pop(name, []):
            setattr(holder, name, cls)
        return cls


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
with_type(string, lambda _: str)
with_type(integer, lambda _: int)  # msgspec's int refuses 3.0: stricter, never looser
with_type(number, lambda _: float)  # msgspec's float takes JSON integers, not booleans
with_type(boolean, lambda _: bool)


def uuid_str(value: Any, p: str) -> None:
    if not isinstance(value, str):
        want("a UUID string", value, p)
    if not _UUID.match(value):
        raise Bad(
            p, f"expected a UUID such as 0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b, got {short(value)}"
        )


with_fast(uuid_str, lambda v: isinstance(v, str) and _UUID.match(v) is not None)
# msgspec searches with the pattern; anchored, a search is a match.
with_type(uuid_str, lambda _: Annotated[str, msgspec.Meta(pattern=_UUID.pattern)])


def minimum(limit: int) -> Check:
    def check(value: Any, p: str) -> None:
        integer(value, p)
        if value < limit:
            raise Bad(p, f"must be at least {limit}, got {value}")

    with_type(check, lambda _: Annotated[int, msgspec.Meta(ge=limit)])
    return with_fast(check, lambda v: _is_integer(v) and v >= limit)


def enum(*values: str) -> Check:
    allowed = frozenset(values)

    def check(value: Any, p: str) -> None:
        if not isinstance(value, str) or value not in allowed:
            raise Bad(p, f"must be one of {', '.join(values)}; got {short(value)}")

    with_type(check, lambda _: Literal[values])
    return with_fast(check, lambda v: isinstance(v, str) and v in allowed)


def const(expected: str) -> Check:
    def check(value: Any, p: str) -> None:
        if value != expected:
            raise Bad(p, f"must be {expected!r}, got {short(value)}")

    with_type(check, lambda _: Literal[expected])
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

    def typer(typing: _Typing) -> Any | None:
        tp = typing.reference(item)
        return None if tp is None else list[tp]  # type: ignore[valid-type]

    with_type(check, typer)
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

    def typer(typing: _Typing) -> Any | None:
        if together:
            return None
        if extra is None:
            return typing.struct(check, props or {}, required, closed)
        if props or required or closed:
            return None
        tp = typing.reference(extra)
        return None if tp is None else dict[str, tp]  # type: ignore[valid-type]

    if spec is not None:
        _OBJ_SPECS[check] = spec
    with_type(check, typer)
    return with_fast(check, ok)


class _ObjSpec:
    """What a plain :func:`obj` checker (no ``extra``, ``closed`` or ``together``) allows."""

    def __init__(self, props: dict[str, Check], required: tuple[str, ...]) -> None:
        self.props = props
        self.required = required


_OBJ_SPECS: dict[Check, _ObjSpec] = {}


def _merged(checks: tuple[Check, ...]) -> Check | None:
    """One object checker for plain object checkers that must all pass, if they can merge.

    They can when no property is typed by two of them: a value then passes them all
    exactly when it passes one object with all their properties and required names,
    and the merged predicate walks the value once (the merged type decodes it once).
    """
    specs = [_OBJ_SPECS.get(c) for c in checks]
    props: dict[str, Check] = {}
    required: list[str] = []
    for spec in specs:
        if spec is None or props.keys() & spec.props.keys():
            return None
        props.update(spec.props)
        required.extend(r for r in spec.required if r not in required)
    return obj(props, tuple(required))


def all_of(*checks: Check) -> Check:
    def check(value: Any, p: str) -> None:
        for c in checks:
            c(value, p)

    merged = _merged(checks)
    if merged is not None:
        with_type(check, lambda typing: typing.type_of(merged))
        return with_fast(check, fast(merged))
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

    with_type(check, lambda typing: typing.reference(get()))
    return with_fast(check, lambda v: fast(get())(v))
