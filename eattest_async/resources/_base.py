"""What every resource shares: the core (the request pipeline), and the account prefix."""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import attrs

from .. import _protocol
from .._converter import structure, structure_many
from .._pagination import Scan, ScanProgress
from .._protocol import ApiRequest, DecodeTurn, Envelope
from .._validation import check_bool, check_page, check_page_size, check_seconds
from ..models.common import NO_MESSAGES, Items, Messages, Page
from ..models.scans import Checkpoint, environment_id

if TYPE_CHECKING:
    from .._core import Core

T = TypeVar("T")

_PLAIN_KEYS = (int, str)

# (path, started): the path built after discovering the account id, and when that began.
# A call's deadline covers the discovery: the request built on exactly that path object
# (in this task) carries the start. Any other request ignores it.
_DISCOVERY: contextvars.ContextVar[tuple[str, float] | None] = contextvars.ContextVar(
    "eattest_discovery", default=None
)


def started_for(path: str) -> float | None:
    """When the call that built ``path`` began, if it had to discover the account first."""
    found = _DISCOVERY.get()
    if found is None or found[0] is not path:
        return None
    _DISCOVERY.set(None)
    return found[1]


# Keyword arguments that are durations in seconds, wherever a public method takes them.
_SECONDS = ("timeout", "interval")


def _is_flag(parameter: inspect.Parameter) -> bool:
    # Annotations are strings here (``from __future__ import annotations``).
    return parameter.annotation in ("bool", bool)


def _checking_arguments(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` with its durations (``check_seconds``) and flags (every parameter
    annotated ``bool``: ``check_bool``) checked first: before the account discovery or any
    request, whatever the method does next. A duration of None: the default."""
    signature = inspect.signature(method)
    seconds = [name for name in _SECONDS if name in signature.parameters]
    flags = [name for name, parameter in signature.parameters.items() if _is_flag(parameter)]
    if not seconds and not flags:
        return method

    def check(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            return  # the call itself raises it, as without this check
        for name in seconds:
            if name in bound.arguments and bound.arguments[name] is not None:
                check_seconds(bound.arguments[name], name)
        for name in flags:
            if name in bound.arguments:
                check_bool(bound.arguments[name], name)

    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def checked_async(*args: Any, **kwargs: Any) -> Any:
            check(args, kwargs)
            return await method(*args, **kwargs)

        return checked_async

    @functools.wraps(method)
    def checked(*args: Any, **kwargs: Any) -> Any:
        check(args, kwargs)
        return method(*args, **kwargs)

    return checked


class Resource:
    """Base of the resource namespaces (``client.dossiers`` ...): no state but the core.

    Every public method of a subclass that takes ``timeout=`` (or ``interval=``) has it
    checked before anything else (a finite number of seconds > 0), and so has every flag
    (a parameter annotated ``bool``: True or False, never a truthy "false"): one rule for all.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, member in list(vars(cls).items()):
            if not name.startswith("_") and inspect.isfunction(member):
                setattr(cls, name, _checking_arguments(member))

    def __init__(self, core: Core) -> None:
        self._core = core

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    async def _account_path(self, template: str, **params: object) -> str:
        started = None if self._core.knows_account_id else self._core.clock()
        account_id = await self._core.account_id(started=started)
        built = _protocol.path("/account/{account_id}" + template, account_id=account_id, **params)
        if started is not None:
            _DISCOVERY.set((built, started))
        return built

    async def _one(self, request: ApiRequest, model: type[T]) -> T:
        envelope = await self._core.call(request)
        data = _protocol.single_content(envelope, method=request.method, request_path=request.path)
        return with_messages(
            structure(data, model, method=request.method, path=request.path), envelope
        )

    async def _many(self, request: ApiRequest, model: type[T]) -> Items[T]:
        envelope = await self._core.call(request)
        data = _protocol.list_content(envelope, method=request.method, request_path=request.path)
        return Items(
            structure_many(data, model, method=request.method, path=request.path),
            messages_of(envelope),
        )

    async def _list_page(
        self,
        template: str,
        operation: str,
        filters: tuple[tuple[str, str], ...],
        model: type[T],
        page: int,
        page_size: int | None,
        timeout: float | None,
    ) -> Page[T]:
        """One page of a list operation: its checked filters plus ``page``/``pageSize``."""
        paging = _protocol.query(
            page=check_page(page),
            pageSize=None if page_size is None else check_page_size(page_size),
        )
        path = await self._account_path(template)
        request = ApiRequest(
            method="GET",
            path=path,
            operation=operation,
            query=(*filters, *paging),
            timeout=timeout,
            started=started_for(path),
        )
        return await self._page(request, model, page, page_size)

    async def _page(
        self, request: ApiRequest, model: type[T], page: int, page_size: int | None
    ) -> Page[T]:
        envelope = await self._core.call(request)
        return page_of(envelope, request, model, page, page_size)

    def _scan(
        self,
        *,
        operation: str,
        template: str,
        filters: tuple[tuple[str, str], ...],
        model: type[T],
        raw_key: str,
        page_size: int,
        concurrency: int | None,
        order: Literal["page", "completed"],
        resume_from: Checkpoint | dict[str, Any] | None,
        on_progress: Callable[[ScanProgress], object] | None,
        raw: bool,
        prefetch: int | None = None,
    ) -> Scan[Any]:
        """A :class:`Scan` of a list operation: every page, concurrently, each item once."""
        core = self._core
        page_size = check_page_size(page_size)
        raw = check_bool(raw, "raw")

        async def fetch(page: int, size: int, turn: DecodeTurn | None) -> Envelope:
            path = await self._account_path(template)
            request = ApiRequest(
                method="GET",
                path=path,
                operation=operation,
                query=(*filters, ("page", str(page)), ("pageSize", str(size))),
                started=started_for(path),
            )
            return await core.call(request, turn=turn)

        def convert(items: list[Any]) -> tuple[Any, ...]:
            if raw:
                return tuple(items)
            return structure_many(items, model, method="GET", path=template)

        def key(item: Any) -> Hashable | None:
            # Deduplicated on the JSON, before anything is structured.
            value = item.get(raw_key) if isinstance(item, dict) else None
            if type(value) in _PLAIN_KEYS:  # the usual ids: no ABC check, per item
                return value
            return value if isinstance(value, Hashable) else None

        return Scan(
            operation=operation,
            filters=filters,
            fetch=fetch,
            convert=convert,
            key=key,
            retries=lambda: dict(core.stats.retries),
            cooldown=lambda: core.gate.cooldown_remaining,
            rate=core.gate.snapshot,
            page_size=page_size,
            concurrency=core.limits.scan_concurrency if concurrency is None else concurrency,
            order=order,
            resume_from=resume_from,
            on_progress=on_progress,
            prefetch=prefetch,
            environment=environment_id(core.environment.base_url),
            known_account=lambda: core.known_account_id,
            discover_account=core.account_id,
        )

    async def _action(self, request: ApiRequest) -> Messages:
        """An action's answer: its messages, errors included when the status is 2xx (a
        refusal comes with a 4xx and raises)."""
        envelope = await self._core.call(request)
        return messages_of(envelope)


def messages_of(envelope: Envelope) -> Messages:
    """The envelope's messages (info, warning, error), typed; unreadable ones are empty."""
    if not envelope.messages or not isinstance(envelope.messages, dict):
        return NO_MESSAGES
    return structure(envelope.messages, Messages)


def with_messages(result: T, envelope: Envelope) -> T:
    """``result`` carrying the envelope's messages (models declare ``messages_field()``)."""
    messages = messages_of(envelope)
    if messages is NO_MESSAGES or not attrs.has(type(result)):
        return result
    return attrs.evolve(result, messages=messages)  # type: ignore[misc]


def page_of(
    envelope: Envelope, request: ApiRequest, model: type[T], page: int, page_size: int | None
) -> Page[T]:
    data = _protocol.list_content(envelope, method=request.method, request_path=request.path)
    items = structure_many(data, model, method=request.method, path=request.path)
    size = envelope.size if envelope.size is not None else (page_size or len(items))
    return Page(
        items=items,
        page=envelope.page if envelope.page is not None else page,
        size=size,
        total_elements=envelope.total_elements,
        messages=messages_of(envelope),
    )


def get(path: str, operation: str, *, timeout: float | None = None, **query: Any) -> ApiRequest:
    """A GET request; query values of None are not sent."""
    return ApiRequest(
        method="GET",
        path=path,
        operation=operation,
        query=_protocol.query(**query),
        timeout=timeout,
        started=started_for(path),
    )


def post(
    path: str,
    operation: str,
    body: object,
    *,
    idempotent: bool = False,
    timeout: float | None = None,
    expect_content: bool = False,
) -> ApiRequest:
    """A POST request with a JSON body (not retried once sent, unless ``idempotent``).

    ``body=None`` sends no body at all, for operations that declare none (``stop``).
    """
    return ApiRequest(
        method="POST",
        path=path,
        operation=operation,
        body=None if body is None else _protocol.dumps(body),
        idempotent=idempotent,
        timeout=timeout,
        expect_content=expect_content,
        started=started_for(path),
    )
