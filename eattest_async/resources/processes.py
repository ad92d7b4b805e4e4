"""Dossier-creation processes: status, recent ones, and waiting for one."""

from __future__ import annotations

import datetime as dt

import anyio

from .._exceptions import DossierCreationError, ProcessTimeoutError
from .._filters import optional
from .._protocol import message_texts
from .._validation import check_date, check_process_id
from ..models import Items, ProcessStatus
from ._base import Resource, get


class ProcessesResource(Resource):
    """Follow the asynchronous creation of dossiers."""

    async def get(self, process_id: str, *, timeout: float | None = None) -> ProcessStatus:
        """GET /account/{accountId}/dossiers/process/{processId}."""
        path = await self._account_path(
            "/dossiers/process/{process_id}", process_id=check_process_id(process_id)
        )
        return await self._one(get(path, "get_process", timeout=timeout), ProcessStatus)

    async def list(
        self, *, since: dt.date | str | None = None, timeout: float | None = None
    ) -> Items[ProcessStatus]:
        """GET /account/{accountId}/dossiers/processes: started since a date (default: 24 h)."""
        from_date = optional(check_date, since, "since")  # before the account discovery
        request = get(
            await self._account_path("/dossiers/processes"),
            "list_processes",
            timeout=timeout,
            fromDate=from_date,
        )
        return await self._many(request, ProcessStatus)

    async def wait(
        self,
        process_id: str,
        *,
        timeout: float = 60.0,
        interval: float = 1.0,
        raise_on_failure: bool = True,
    ) -> ProcessStatus:
        """Poll until the process completes (or ``timeout`` seconds pass).

        A failed creation raises :class:`DossierCreationError` carrying its E-codes, unless
        ``raise_on_failure=False``. Polling backs off gently from ``interval`` to 10 s.
        """
        process_id = check_process_id(process_id)  # the other arguments: see Resource
        delay = interval
        status: ProcessStatus | None = None
        with anyio.move_on_after(timeout):
            while True:
                status = await self.get(process_id)
                if status.complete:
                    break
                await anyio.sleep(delay)
                delay = min(delay * 1.5, 10.0)
        if status is None or not status.complete:
            raise ProcessTimeoutError(process_id, timeout)
        if status.failed and raise_on_failure:
            # Server text from a 2xx, which the core does not redact (data stays as sent):
            # redacted and bounded here, as the core does for every error it builds.
            codes, texts = message_texts(
                [{"code": m.code, "message": m.message} for m in status.errors],
                redact=self._core.redactor.text,
            )
            raise DossierCreationError(
                f"dossier creation {process_id} failed",
                status=None,
                method="GET",
                path=f"process/{process_id}",
                codes=codes,
                messages=texts,
            )
        return status
