"""Streamed, atomic downloads: a temp file beside the target, size check, fsync, rename.

A download that fails, is cut short or is cancelled leaves nothing behind; the file name a
server proposes in ``Content-Disposition`` can never leave the destination folder.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import unquote

import anyio

from ._exceptions import IncompleteResponseError

__all__ = ["filename_from_disposition", "safe_filename", "write_atomically"]

_MAX_NAME_BYTES = 200
_RESERVED = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')
_WINDOWS_DEVICES = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    *(f"COM{i}" for i in range(1, 10)),
    *(f"LPT{i}" for i in range(1, 10)),
}


def filename_from_disposition(header: str | None) -> str | None:
    """The file name proposed by a Content-Disposition header (RFC 6266), unsanitised."""
    if not header:
        return None
    extended = re.search(r"filename\*\s*=\s*([^;]+)", header, re.IGNORECASE)
    if extended:
        value = extended.group(1).strip().strip('"')
        charset, _, rest = value.partition("''")
        if rest:
            try:
                return unquote(rest, encoding=charset or "utf-8", errors="replace")
            except LookupError:
                return unquote(rest)
    plain = re.search(r'filename\s*=\s*("((?:[^"\\]|\\.)*)"|[^;]+)', header, re.IGNORECASE)
    if plain:
        quoted = plain.group(2)
        return re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else plain.group(1).strip()
    return None


def safe_filename(proposed: str | None, fallback: str) -> str:
    """A plain file name for the local disk: no directories, no control characters, no
    leading dots, no reserved device names, at most 200 UTF-8 bytes (extension kept)."""
    name = unicodedata.normalize("NFC", proposed or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]  # the last path component only
    name = _RESERVED.sub("_", name)
    # Unicode tricks: bidirectional overrides and other format characters would disguise
    # the extension ("invoice\u202efdp.exe").
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cf", "Cc", "Cs", "Co"))
    name = name.strip().lstrip(".").strip()
    if not name or name in (".", ".."):
        name = fallback
    stem, dot, extension = name.rpartition(".")
    if not dot or len(extension) > 16:
        stem, extension = name, ""
    if stem.upper() in _WINDOWS_DEVICES:
        stem = "_" + stem
    suffix = f".{extension}" if extension else ""
    budget = _MAX_NAME_BYTES - len(suffix.encode())
    stem_bytes = stem.encode()[:budget]
    stem = stem_bytes.decode("utf-8", errors="ignore") or "file"
    return stem + suffix


async def write_atomically(
    chunks: AsyncIterator[bytes], target: Path, *, expected_size: int | None, method: str, path: str
) -> int:
    """Write ``chunks`` to ``target`` all or nothing; returns the number of bytes written."""

    def make_temp() -> str:
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor, name = tempfile.mkstemp(dir=target.parent, prefix=".eattest-", suffix=".part")
        os.close(descriptor)
        return name

    temp = Path(await anyio.to_thread.run_sync(make_temp))
    written = 0
    try:
        async with await anyio.open_file(temp, "wb") as handle:
            async for chunk in chunks:
                await handle.write(chunk)
                written += len(chunk)
            await handle.flush()
            await anyio.to_thread.run_sync(os.fsync, handle.wrapped.fileno())
        if expected_size is not None and written != expected_size:
            raise IncompleteResponseError(
                f"file is {written} bytes, {expected_size} were announced", method=method, path=path
            )
        await anyio.to_thread.run_sync(os.replace, temp, target)
    except BaseException:
        # Cancellation included: the partial file goes at once. Synchronously, because an
        # await here would itself be cancelled.
        temp.unlink(missing_ok=True)  # noqa: ASYNC240
        raise
    return written
