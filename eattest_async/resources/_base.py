"""What every resource shares: the client, and the account prefix of the paths."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from .. import _protocol
from .._converter import structure, structure_many
from .._protocol import ApiRequest, Envelope
from ..models.common import Messages, Page

if TYPE_CHECKING:
    from .._client import Client

T = TypeVar("T")


class Resource:
    """Base of the resource namespaces (``client.dossiers`` ...): no state but the client."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    async def _account_path(self, template: str, **params: object) -> str:
        account_id = await self._client.account_id()
        return _protocol.path("/account/{account_id}" + template, account_id=account_id, **params)

    async def _one(self, request: ApiRequest, model: type[T]) -> T:
        envelope = await self._client._call(request)
        data = _protocol.single_content(envelope, method=request.method, request_path=request.path)
        return structure(data, model, method=request.method, path=request.path)

    async def _many(self, request: ApiRequest, model: type[T]) -> tuple[T, ...]:
        envelope = await self._client._call(request)
        data = _protocol.list_content(envelope, method=request.method, request_path=request.path)
        return structure_many(data, model, method=request.method, path=request.path)

    async def _page(
        self, request: ApiRequest, model: type[T], page: int, page_size: int | None
    ) -> Page[T]:
        envelope = await self._client._call(request)
        return page_of(envelope, request, model, page, page_size)

    async def _action(self, request: ApiRequest) -> Messages:
        envelope = await self._client._call(request)
        return messages_of(envelope)


def messages_of(envelope: Envelope) -> Messages:
    if envelope.messages is None:
        return Messages()
    return structure(envelope.messages, Messages)


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
    """A POST request with a JSON body (not retried once sent, unless ``idempotent``)."""
    return ApiRequest(
        method="POST",
        path=path,
        operation=operation,
        body=_protocol.dumps(body),
        idempotent=idempotent,
        timeout=timeout,
        expect_content=expect_content,
    )
