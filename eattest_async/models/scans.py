"""Where a scan stands (:class:`Checkpoint`) and where a sync resumes (:class:`Watermark`).

Both are plain values: persisted with ``to_json()``, and validated by ``from_json()`` (a
file edited by hand or truncated is a clear :class:`InvalidInputError`, and nothing it
says, however large, allocates memory in proportion).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeGuard
from urllib.parse import urlsplit

import attrs

from .._exceptions import InvalidInputError

__all__ = [
    "MAX_EDGE",
    "WATERMARK_BYTES",
    "Checkpoint",
    "Watermark",
    "bounded_edge",
    "check_watermark_filters",
    "edge_id",
    "environment_id",
]

CHECKPOINT_VERSION = 2
WATERMARK_VERSION = 1
# A checkpoint holds item ranges, not pages: a few per gap. More than this is not ours.
_MAX_RANGES = 100_000
_MAX_COUNT = 2**62

# A watermark's to_json(), as JSON, never takes more than this: the CLI reads a state file
# within it. The edge is bounded by what fits, so a state written can always be read back.
WATERMARK_BYTES = 1 << 20
# The longest edge pair to_json() writes, with its separator (json.dumps's spaces too): an
# id up to 2**62, a naive ISO stamp with microseconds (anything else is refused).
_EDGE_PAIR_BYTES = len(f'[{_MAX_COUNT}, "9999-12-31T23:59:59.999999"], ')
_FILTERS_BYTES = 16 * 1024  # a watermark's filters, names and values as JSON
# The keys, the version, changed_at (an offset included), and the account and environment.
_HEAD_BYTES = 1024 + len(f'"account": {2**62}, "environment": "{"f" * 16}", ')
MAX_EDGE = (WATERMARK_BYTES - _FILTERS_BYTES - _HEAD_BYTES) // _EDGE_PAIR_BYTES
# Earlier versions kept edges of any length (up to this many read): only the latest are kept.
_MAX_EDGE_READ = 1_000_000
_STAMP_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?", re.ASCII)


_ENVIRONMENT_TEXT = re.compile(r"[0-9a-f]{16}", re.ASCII)


def environment_id(base_url: str) -> str:
    """A short digest of the API's host and path: which service a checkpoint or watermark
    was made on (TEST, PROD, EDGE...), without writing the URL into a state file (its
    query could hold a secret: left out, as are the scheme and port, which a proxy or a
    tunnel to the same service may change)."""
    parts = urlsplit(base_url)
    where = f"{(parts.hostname or '').lower()}{parts.path.rstrip('/')}"
    return hashlib.sha256(where.encode()).hexdigest()[:16]


def _identity(data: Mapping[str, Any], field: str) -> tuple[int | None, str | None]:
    """The optional ``account`` and ``environment`` of a saved checkpoint or watermark
    (absent from files written before they were kept: those cannot be checked)."""
    account, environment = data.get("account"), data.get("environment")
    if account is not None:
        account = _int(account, field, low=1)
    if environment is not None and not (
        isinstance(environment, str) and _ENVIRONMENT_TEXT.fullmatch(environment)
    ):
        raise InvalidInputError(field, "environment: expected 16 hex digits")
    return account, environment


def _check_identity(
    saved: tuple[int | None, str | None],
    account: int | None,
    environment: str | None,
    field: str,
    what: str,
) -> None:
    """Refuse a checkpoint or watermark made for another account or on another service:
    its positions, or its latest change, say nothing of this one's (an unknown side, as in
    a file written before they were kept, is not checked)."""
    if saved[1] is not None and environment is not None and saved[1] != environment:
        raise InvalidInputError(field, f"this {what} was made on another service (base URL)")
    if saved[0] is not None and account is not None and saved[0] != account:
        raise InvalidInputError(field, f"this {what} was made for account {saved[0]}")


def edge_id(value: object) -> TypeGuard[int]:
    """Can ``value`` be in an edge? (an integer from 0 to 2**62, as from_json reads back)."""
    return type(value) is int and 0 <= value <= _MAX_COUNT


def _latest_pairs(pairs: Iterable[tuple[int, str]]) -> tuple[tuple[int, str], ...]:
    """At most :data:`MAX_EDGE` pairs, those of the latest stamps, sorted by id."""
    kept = sorted(set(pairs), key=lambda pair: (pair[1], pair[0]))[-MAX_EDGE:]
    return tuple(sorted(kept))


def check_watermark_filters(filters: Iterable[tuple[str, str]]) -> None:
    """Filters a watermark can keep within its bytes (checked before a sync runs)."""
    # An upper bound of their size as JSON: every character escaped takes 6 bytes.
    if sum(6 * (len(name) + len(value)) + 8 for name, value in filters) + 2 > _FILTERS_BYTES:
        raise InvalidInputError(
            "filters", f"too long for a sync watermark ({_FILTERS_BYTES} bytes)"
        )


def _int(value: object, field: str, *, low: int = 0, high: int = _MAX_COUNT) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInputError(field, f"expected an integer from {low} to {high}")
    return value


def _ranges(value: object, total: int | None) -> tuple[tuple[int, int], ...]:
    if not isinstance(value, (list, tuple)) or len(value) > _MAX_RANGES:
        raise InvalidInputError("resume_from", "done: expected a list of [start, stop] ranges")
    ranges: list[tuple[int, int]] = []
    for item in value:
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise InvalidInputError("resume_from", "done: expected [start, stop] pairs")
        start, stop = _int(item[0], "resume_from"), _int(item[1], "resume_from")
        if start >= stop or (ranges and start <= ranges[-1][1]):
            raise InvalidInputError("resume_from", "done: ranges must be sorted and disjoint")
        if total is not None and stop > total:
            raise InvalidInputError("resume_from", "done: a range goes past total_elements")
        ranges.append((start, stop))
    return tuple(ranges)


@attrs.frozen(kw_only=True)
class Checkpoint:
    """The items a scan delivered, as ranges of positions in the listing.

    Pass it (or its ``to_json()``) as ``resume_from=`` to fetch only the rest; positions,
    not pages, so a resume survives a server that changes its page size. It names the
    account and the service (a digest of the base URL) scanned: a resume on another is an
    InvalidInputError; a checkpoint written before they were named cannot be checked.
    """

    operation: str
    filters: tuple[tuple[str, str], ...]
    page_size: int
    total_elements: int | None
    done: tuple[tuple[int, int], ...]  # [start, stop) positions delivered, sorted, disjoint
    account: int | None = None  # the account scanned (None: not known, or an older file)
    environment: str | None = None  # environment_id() of the service scanned

    def check_identity(self, *, account: int | None, environment: str | None) -> None:
        """InvalidInputError("resume_from") if made for another account or service."""
        _check_identity(
            (self.account, self.environment), account, environment, "resume_from", "checkpoint"
        )

    @property
    def items_done(self) -> int:
        """How many items the ranges hold."""
        return sum(stop - start for start, stop in self.done)

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable form, for ``orjson.dumps``/``json.dumps`` and ``from_json``."""
        return {
            "version": CHECKPOINT_VERSION,
            "operation": self.operation,
            "filters": [list(f) for f in self.filters],
            "page_size": self.page_size,
            "total_elements": self.total_elements,
            "done": [list(r) for r in self.done],
            "account": self.account,
            "environment": self.environment,
        }

    @classmethod
    def from_json(cls, data: object) -> Checkpoint:
        """Check and load what ``to_json()`` wrote (version 1, pages, is read too)."""
        if not isinstance(data, Mapping):
            raise InvalidInputError("resume_from", "not a scan checkpoint (expected an object)")
        version = data.get("version", 1)
        if version not in (1, CHECKPOINT_VERSION):
            raise InvalidInputError("resume_from", f"unknown checkpoint version {version!r}")
        try:
            operation, filters = data["operation"], data["filters"]
            page_size = _int(data["page_size"], "resume_from", low=1, high=1_000_000)
            raw_total = data["total_elements"]
            done_field = data["done" if version == CHECKPOINT_VERSION else "done_pages"]
        except KeyError as exc:
            raise InvalidInputError("resume_from", f"not a scan checkpoint (no {exc})") from None
        if not isinstance(operation, str) or not isinstance(filters, (list, tuple)):
            raise InvalidInputError("resume_from", "not a scan checkpoint")
        pairs = []
        for item in filters:
            if not (isinstance(item, (list, tuple)) and len(item) == 2):
                raise InvalidInputError("resume_from", "filters: expected [name, value] pairs")
            pairs.append((str(item[0]), str(item[1])))
        total = None if raw_total is None else _int(raw_total, "resume_from")
        if version == 1:
            done_field = _pages_to_ranges(done_field, page_size, total)
        account, environment = _identity(data, "resume_from")
        return cls(
            operation=operation,
            filters=tuple(pairs),
            page_size=page_size,
            total_elements=total,
            done=_ranges(done_field, total),
            account=account,
            environment=environment,
        )


def _pages_to_ranges(pages: object, size: int, total: int | None) -> list[tuple[int, int]]:
    if not isinstance(pages, (list, tuple)) or len(pages) > _MAX_RANGES:
        raise InvalidInputError("resume_from", "done_pages: expected a list of pages")
    ranges: list[tuple[int, int]] = []
    for page in sorted({_int(p, "resume_from", high=_MAX_COUNT // size) for p in pages}):
        start, stop = page * size, (page + 1) * size
        if total is not None:
            stop = min(stop, total)
            if start >= stop:
                raise InvalidInputError("resume_from", "done_pages: a page past total_elements")
        if ranges and ranges[-1][1] == start:
            ranges[-1] = (ranges[-1][0], stop)
        else:
            ranges.append((start, stop))
    return ranges


@attrs.frozen(kw_only=True)
class Watermark:
    """Where the next ``changes()`` starts: the latest change seen, on the server's clock.

    ``edge`` keeps (id, change stamp) of what was delivered within the overlap margin
    before ``changed_at``: the next run asks again from ``changed_at - margin`` (clocks of
    the service's nodes differ; several changes share a second) and skips those. It names
    the account and the service (a digest of the base URL) synced: used on another, an
    InvalidInputError; a watermark written before they were named cannot be checked.
    """

    changed_at: dt.datetime
    edge: tuple[tuple[int, str], ...] = ()
    filters: tuple[tuple[str, str], ...] = ()
    account: int | None = None  # the account synced (None: not known, or an older file)
    environment: str | None = None  # environment_id() of the service synced

    def __attrs_post_init__(self) -> None:
        # What to_json() writes must fit WATERMARK_BYTES, whoever made the watermark.
        if not isinstance(self.changed_at, dt.datetime):
            raise InvalidInputError("since", "changed_at: expected a datetime")
        _identity({"account": self.account, "environment": self.environment}, "since")
        if len(self.edge) > MAX_EDGE:
            raise InvalidInputError("since", f"edge: more than {MAX_EDGE} [id, stamp] pairs")
        for pair in self.edge:
            if not (
                isinstance(pair, tuple)
                and len(pair) == 2
                and edge_id(pair[0])
                and isinstance(pair[1], str)
                and _STAMP_TEXT.fullmatch(pair[1])
            ):
                raise InvalidInputError(
                    "since", "edge: expected (id, stamp) pairs, an ISO datetime as the stamp"
                )
        check_watermark_filters(self.filters)

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable form, for a state file and ``from_json``."""
        return {
            "version": WATERMARK_VERSION,
            "changed_at": self.changed_at.isoformat(),
            "edge": [list(e) for e in self.edge],
            "filters": [list(f) for f in self.filters],
            "account": self.account,
            "environment": self.environment,
        }

    def check_identity(self, *, account: int | None, environment: str | None) -> None:
        """InvalidInputError("since") if made for another account or service."""
        _check_identity(
            (self.account, self.environment), account, environment, "since", "watermark"
        )

    @classmethod
    def from_json(cls, data: object) -> Watermark:
        """Check and load what ``to_json()`` wrote.

        An edge longer than :data:`MAX_EDGE` (earlier versions kept any number) keeps the
        pairs of the latest stamps: the dossiers of the others come again next run.
        """
        if not isinstance(data, Mapping) or data.get("version") != WATERMARK_VERSION:
            raise InvalidInputError("since", "not a sync watermark (or an unknown version)")
        try:
            changed_at = dt.datetime.fromisoformat(str(data["changed_at"]))
            edge_field, filters_field = data.get("edge", []), data.get("filters", [])
        except (KeyError, ValueError) as exc:
            raise InvalidInputError("since", f"not a sync watermark ({exc})") from None
        if not isinstance(edge_field, list) or len(edge_field) > _MAX_EDGE_READ:
            raise InvalidInputError("since", "edge: expected a list of [id, stamp] pairs")
        edge = []
        for item in edge_field:
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], str)):
                raise InvalidInputError("since", "edge: expected [id, stamp] pairs")
            edge.append((_int(item[0], "since"), item[1]))
        if len(edge) > MAX_EDGE:
            edge = list(_latest_pairs(edge))
        if not isinstance(filters_field, list) or not all(
            isinstance(f, list) and len(f) == 2 for f in filters_field
        ):
            raise InvalidInputError("since", "filters: expected [name, value] pairs")
        account, environment = _identity(data, "since")
        return cls(
            changed_at=changed_at,
            edge=tuple(edge),
            filters=tuple((str(k), str(v)) for k, v in filters_field),
            account=account,
            environment=environment,
        )


def bounded_edge(pairs: Iterable[tuple[int, str]]) -> tuple[tuple[tuple[int, str], ...], int]:
    """An edge of at most :data:`MAX_EDGE` pairs (the latest stamps'), and how many were
    left out: their dossiers come again next run (a duplicate, never a loss)."""
    unique = set(pairs)
    kept = _latest_pairs(unique)
    return kept, len(unique) - len(kept)
