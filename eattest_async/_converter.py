"""The one cattrs converter of the library (private): JSON dicts -> frozen attrs models.

A tolerant reader: unknown keys are ignored; missing or null fields become None (or an
empty tuple); camelCase keys map to snake_case attributes by a hook factory, with the
per-field wire names and variant aliases the models declare (v1.1 ``name`` /
``listFileInformation`` / ``fileId`` and v1.3 ``documentName`` / ``evidences`` / ``id``...).
Scalars are read leniently: ``"true"`` is a bool, ``"123"`` an int, dates come with 2, 3
or 6 fractional digits or a ``+0000`` offset. A value that cannot be read at all (a date of
``"N/A"``) becomes None rather than failing the whole record; its neighbours survive. It
is logged at DEBUG by its field, type and size, never its text (which may quote a secret).
Detailed validation is off: structuring sits on the hot path of every scan.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import attrs
from cattrs import Converter

from ._exceptions import UnexpectedResponseError
from ._protocol import parse_date, parse_datetime
from .models.common import Message

__all__ = ["structure", "structure_many"]

logger = logging.getLogger("eattest_async")

T = TypeVar("T")

_converter = Converter(detailed_validation=False, forbid_extra_keys=False)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _shape(value: Any) -> str:
    """What a value is, not what it says: its type and size."""
    if isinstance(value, str):
        return f"str, {len(value)} chars"
    if isinstance(value, (list, dict)):
        return f"{type(value).__name__} of {len(value)}"
    return type(value).__name__


# Lenient hooks: the generated code passes them the field they read (a string) instead of
# a type, for the log line; cattrs passes a type, which they ignore.
_LENIENT: set[Callable[..., Any]] = set()


def _lenient(parse: Callable[[Any], Any], kind: str) -> Callable[[Any, Any], Any]:
    def hook(value: Any, where: Any = None) -> Any:
        try:
            return parse(value)
        except (TypeError, ValueError, OverflowError):
            # Never the value: a server may quote a secret into any field (this module
            # does not know the secrets, so cannot redact), or send megabytes of it.
            logger.debug(
                "unreadable %s value (%s)%s: read as None",
                kind,
                _shape(value),
                f" in {where}" if isinstance(where, str) else "",
            )
            return None

    _LENIENT.add(hook)
    return hook


def _to_int(value: Any) -> int:
    if type(value) is int:
        return value
    if isinstance(value, bool):
        raise TypeError("a bool is not an int here")
    if isinstance(value, float):
        return int(value)
    return int(str(value).strip())


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError("a bool is not a number here")
    return float(value)


def _to_bool(value: Any) -> bool:
    if value is True or value is False:
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no", ""):
            return False
        raise ValueError(value)
    if isinstance(value, int):
        return value != 0
    raise TypeError(type(value).__name__)


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float, bool)):
        return str(value).lower() if isinstance(value, bool) else str(value)
    raise TypeError(type(value).__name__)


def _to_datetime(value: Any) -> dt.datetime:
    if isinstance(value, str):
        return parse_datetime(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value / 1000 if value > 10**11 else value, dt.timezone.utc)
    raise TypeError(type(value).__name__)


def _to_date(value: Any) -> dt.date:
    if isinstance(value, str):
        return parse_date(value)
    return _to_datetime(value).date()


def _to_str_map(value: Any) -> Mapping[str, str]:
    if value.__class__ is dict:  # the wire's form, text only: a plain copy
        for k, v in value.items():
            if k.__class__ is not str or v.__class__ is not str:
                break
        else:
            return dict(value)
    if not isinstance(value, Mapping):
        raise TypeError(type(value).__name__)
    return {str(k): v if isinstance(v, str) else str(v) for k, v in value.items()}


_converter.register_structure_hook(int, _lenient(_to_int, "integer"))
_converter.register_structure_hook(float, _lenient(_to_float, "number"))
_converter.register_structure_hook(bool, _lenient(_to_bool, "boolean"))
_converter.register_structure_hook(str, _lenient(_to_str, "string"))
_converter.register_structure_hook(dt.datetime, _lenient(_to_datetime, "datetime"))
_converter.register_structure_hook(dt.date, _lenient(_to_date, "date"))
_converter.register_structure_hook_func(
    lambda t: t == Mapping[str, str], _lenient(_to_str_map, "mapping")
)


_NONE = type(None)

# Scalars: the common case is checked inline in the generated code (no call at all); a
# value of another type goes through the lenient reader, which gives None if unreadable.
_SCALARS: dict[Any, tuple[str, Callable[[Any, Any], Any]]] = {
    str: ("str", _converter.get_structure_hook(str)),
    int: ("int", _converter.get_structure_hook(int)),
    bool: ("bool", _converter.get_structure_hook(bool)),
    float: ("float", _converter.get_structure_hook(float)),
}
_PARSED: dict[Any, Callable[[Any, Any], Any]] = {
    dt.datetime: _converter.get_structure_hook(dt.datetime),
    dt.date: _converter.get_structure_hook(dt.date),
}


# Hooks whose type argument is optional: lists of them are built by map() in C.
_UNARY: set[Callable[..., Any]] = set()


def _optional_inner(tp: Any) -> Any:
    """X for ``X | None``, else None."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not _NONE]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0]
    return None


def _builder(cls: type[Any]) -> type[Any] | None:
    """A writable twin of a frozen model, to fill an instance at full speed; None if unsafe.

    A frozen attrs class refuses ``obj.x = v``, so its ``__init__`` sets every slot with
    ``object.__setattr__``, two hundred nanoseconds apiece. The twin is a subclass that adds
    nothing but the plain ``__setattr__``: its instances are filled by ordinary (specialised)
    attribute stores, then become the model itself (``__class__``, same memory layout),
    before anyone sees them. It is used only where ``__init__`` would do nothing more:
    no validator, converter, hook, cached hash or field transformer (as attrs reports them;
    before attrs 25.4, which cannot tell, every model goes through ``__init__``).
    """
    inspect = getattr(attrs, "inspect", None)
    if inspect is None:
        return None
    props = inspect(cls)
    fields = attrs.fields(cls)
    slots = {s for k in cls.__mro__ for s in k.__dict__.get("__slots__", ())} - {"__weakref__"}
    if not (
        props.is_slotted
        and props.is_frozen
        and props.added_init
        and props.hashability.name != "HASHABLE_CACHED"
        and props.field_transformer is None
        and slots == {f.name for f in fields}
        and not hasattr(cls, "__attrs_pre_init__")
        and not hasattr(cls, "__attrs_post_init__")
        and all(f.init and f.validator is None and f.converter is None for f in fields)
    ):
        return None
    # Both methods are object's, so the twin's attribute stores take the generic C path.
    twin = type(
        cls.__name__,
        (cls,),
        {"__slots__": (), "__setattr__": object.__setattr__, "__delattr__": object.__delattr__},
    )
    try:  # the layout check CPython makes on __class__ assignment, once, here
        probe: Any = object.__new__(twin)
        probe.__class__ = cls
    except TypeError:
        return None
    return twin


def _model_hook(cls: type[Any]) -> Callable[..., Any]:
    """Generate the structure function of a model: one Python function, fields inline.

    Every field reads its wire key, then its aliases when the key is absent or null, and
    converts in place; what is missing becomes None (or an empty tuple). The common case
    costs no Python call: a scalar of the expected type is kept as is, an ISO string goes
    straight to the C ``fromisoformat``, lists of models are mapped by their own generated
    function; anything else goes through the lenient readers above.
    """
    hints = typing.get_type_hints(cls)
    namespace: dict[str, Any] = {
        "_cls": cls,
        "_Mapping": Mapping,
        "_datetime": dt.datetime.fromisoformat,
        "_date": dt.date.fromisoformat,
        "_map": map,
        "_tuple": tuple,
        "_new": object.__new__,
    }
    lines = [
        # The second argument (the type, as cattrs passes it) is optional, so that lists
        # of models are built by map() in C, without a Python frame per list.
        "def structure(o, _=None):",
        "    if o.__class__ is not dict and not isinstance(o, _Mapping):",
        f"        raise TypeError('{cls.__name__} from a ' + type(o).__name__)",
        "    g = o.get",
    ]
    arguments: list[tuple[str, str, str]] = []
    defaults: list[tuple[str, str]] = []  # envelope fields: their default, as __init__ would
    twin = _builder(cls)
    for index, attribute in enumerate(attrs.fields(cls)):
        if attribute.metadata.get("envelope"):
            # Set from the envelope by the resource, not read from the content.
            if isinstance(attribute.default, attrs.Factory):  # type: ignore[arg-type]
                twin = None  # only __init__ calls factories
            namespace[f"d{index}"] = attribute.default
            defaults.append((attribute.name, f"d{index}"))
            continue
        key = attribute.metadata.get("key") or _camel(attribute.name)
        target = f"f{index}"
        where = repr(f"{cls.__name__}.{attribute.name}")  # for the lenient hooks' log line
        lines.append(f"    v = g({key!r})")
        for alias in attribute.metadata.get("aliases", ()):
            lines.append(f"    if v is None: v = g({alias!r})")
        tp = hints[attribute.name]
        inner = _optional_inner(tp)
        if inner in _SCALARS:
            name, slow = _SCALARS[inner]
            namespace[f"slow_{index}"] = slow
            lines.append(
                f"    {target} = v if v is None or v.__class__ is {name}"
                f" else slow_{index}(v, {where})"
            )
        elif inner in _PARSED:
            # ISO text (what the service sends): the C parser; other forms (2 fractional
            # digits before 3.11, offsets like +0000, epochs, garbage) take the lenient path.
            namespace[f"slow_{index}"] = _PARSED[inner]
            fast, guard = (
                ("_datetime", "") if inner is dt.datetime else ("_date", " and len(v) == 10")
            )
            lines += [
                f"    if v is None: {target} = None",
                f"    elif v.__class__ is str{guard}:",
                f"        try: {target} = {fast}(v)",
                f"        except ValueError: {target} = slow_{index}(v, {where})",
                f"    else: {target} = slow_{index}(v, {where})",
            ]
        elif inner is not None:  # a nested model, or a mapping
            hook = _converter.get_structure_hook(inner)
            namespace[f"hook_{index}"] = hook
            namespace[f"type_{index}"] = inner
            second = where if hook in _LENIENT else f"type_{index}"
            lines.append(f"    {target} = None if v is None else hook_{index}(v, {second})")
        elif typing.get_origin(tp) is tuple:
            element = typing.get_args(tp)[0]
            hook = _converter.get_structure_hook(element)
            namespace[f"hook_{index}"] = hook
            if hook in _UNARY:
                each = f"_tuple(_map(hook_{index}, v))"
            else:
                namespace[f"type_{index}"] = element
                each = f"_tuple([hook_{index}(x, type_{index}) for x in v])"
            lines.append(f"    {target} = () if v is None else {each}")
        else:  # a required field of a plain type
            hook = _converter.get_structure_hook(tp)
            namespace[f"hook_{index}"] = hook
            lines.append(f"    {target} = hook_{index}(v, {where if hook in _LENIENT else None})")
        arguments.append((attribute.name, attribute.alias, target))
    if twin is not None:
        namespace["_twin"] = twin
        lines.append("    self = _new(_twin)")
        lines += [f"    self.{name} = {target}" for name, _, target in arguments]
        lines += [f"    self.{name} = {default}" for name, default in defaults]
        lines.append("    self.__class__ = _cls")
        lines.append("    return self")
    else:
        lines.append(f"    return _cls({', '.join(f'{alias}={t}' for _, alias, t in arguments)})")
    exec("\n".join(lines), namespace)  # noqa: S102 - code generated from the model's own fields
    structure: Callable[..., Any] = namespace["structure"]
    _UNARY.add(structure)
    return structure


_converter.register_structure_hook_factory(attrs.has, _model_hook)
_message = _model_hook(Message)


def _structure_message(value: Any, _: Any = None) -> Message:
    if isinstance(value, str):  # real answers carry plain strings too
        return Message(code=None, message=value)
    return _message(value)  # type: ignore[no-any-return]


_UNARY.add(_structure_message)


_converter.register_structure_hook(Message, _structure_message)


@contextlib.contextmanager
def _reading(cls: type[Any], method: str, path: str) -> Iterator[None]:
    """A record that cannot be read at all (not even an object) is an API error."""
    try:
        yield
    except (TypeError, ValueError, KeyError) as exc:
        raise UnexpectedResponseError(
            f"unexpected response: cannot read {cls.__name__} ({exc})",
            status=200,
            method=method,
            path=path,
        ) from exc


def structure(data: Any, cls: type[T], *, method: str = "", path: str = "") -> T:
    """A model from its JSON form."""
    with _reading(cls, method, path):
        return _converter.structure(data, cls)


def structure_many(
    data: list[Any], cls: type[T], *, method: str = "", path: str = ""
) -> tuple[T, ...]:
    """Models from a list of JSON forms (the hook looked up once)."""
    hook = _converter.get_structure_hook(cls)
    with _reading(cls, method, path):
        if hook in _UNARY:
            return tuple(map(hook, data))  # type: ignore[arg-type]
        return tuple([hook(item, cls) for item in data])
