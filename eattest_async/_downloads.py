"""Streamed, atomic downloads: a temp file beside the target, size check, fsync, publish.

A download that fails, is cut short or is cancelled leaves nothing behind; the file name a
server proposes in ``Content-Disposition`` can never leave the destination folder; a file
already there (the user's, or an earlier download with the same name) is never replaced
unless asked: the new one gets a numbered name, ``report (1).pdf``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
import unicodedata
import zlib
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote

import anyio

from ._exceptions import (
    DestinationError,
    EattestError,
    FileWriteError,
    IncompleteResponseError,
    InvalidInputError,
    ResponseTooLargeError,
)

__all__ = [
    "Inflater",
    "check_folder",
    "choose_target",
    "filename_from_disposition",
    "numbered",
    "publish",
    "safe_filename",
    "write_atomically",
]

T = TypeVar("T")

_MAX_NAME_BYTES = 200
_RESERVED = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')
_WINDOWS_DEVICES = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    *(f"COM{i}" for i in range(1, 10)),
    *(f"LPT{i}" for i in range(1, 10)),
    # Windows also reserves the superscript digits and the console pseudo-files.
    *(f"{p}{d}" for p in ("COM", "LPT") for d in "\u00b9\u00b2\u00b3"),
    "CONIN$",
    "CONOUT$",
}
# Errors that say "this file system cannot make hard links", as opposed to "name taken".
_NO_LINKS = {errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EACCES}
_MAX_NUMBER = 10_000
_CHARSETS = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "iso-8859-1": "latin-1",
    "latin1": "latin-1",
    "latin-1": "latin-1",
}


class Inflater:
    """A file body's Content-Encoding undone as it arrives: ``identity``, ``gzip`` (several
    members too; bytes after the last one ignored, as ``gzip -d`` does) or ``deflate``
    (zlib-wrapped, or raw as some servers send it); any other is a ValueError. Each piece
    it gives is at most ``size`` bytes, so that a bomb is stopped by its first pieces;
    ``complete`` says whether the stream ended whole. A corrupt stream is a ``zlib.error``.
    """

    def __init__(self, encoding: str) -> None:
        name = encoding.strip().lower()
        self.identity = name in ("", "identity")
        if not self.identity and name not in ("gzip", "x-gzip", "deflate"):
            raise ValueError(name)
        self._gzip = name in ("gzip", "x-gzip")
        self._decoder: zlib._Decompress | None = None
        self._head = b""  # a member's first byte, until the second says what follows
        self._members = 0  # ended so far
        self._trailing = False  # after the last gzip member: ignored

    @property
    def complete(self) -> bool:
        # One byte left after a whole gzip member is trailing, as two or more would be.
        trailing = self._gzip and self._members > 0
        return self.identity or (
            self._members > 0 and self._decoder is None and (not self._head or trailing)
        )

    def _start(self, data: bytes) -> zlib._Decompress | None:
        """The decoder of the member ``data`` begins, None for trailing bytes."""
        if self._gzip:
            if data[:2] == b"\x1f\x8b":
                return zlib.decompressobj(16 + zlib.MAX_WBITS)
            if self._members:
                return None
            raise zlib.error("not a gzip stream")
        if self._members:
            raise zlib.error("data after the end of the deflate stream")
        # RFC 9110's deflate is the zlib format; raw deflate is a common mistake.
        wrapped = data[0] & 0x0F == 8 and int.from_bytes(data[:2], "big") % 31 == 0
        return zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)

    def feed(self, data: bytes, size: int) -> Iterator[bytes]:
        if self.identity:
            for start in range(0, len(data), size):
                yield data[start : start + size]
            return
        data, self._head = self._head + data, b""
        while data and not self._trailing:
            if self._decoder is None:
                if len(data) < 2:
                    self._head = data
                    return
                decoder = self._start(data)
                if decoder is None:
                    self._trailing = True
                    return
                self._decoder = decoder
            decoder = self._decoder
            piece = decoder.decompress(data, size)
            if piece:
                yield piece
            if decoder.eof:
                self._members += 1
                self._decoder, data = None, decoder.unused_data
            else:
                data = decoder.unconsumed_tail

    def finish(self, size: int) -> Iterator[bytes]:
        """What the decoder still holds, once the body is all in."""
        decoder = self._decoder
        if decoder is None:
            return
        while piece := decoder.decompress(decoder.unconsumed_tail, size):
            yield piece
        rest = decoder.flush()
        for start in range(0, len(rest), size):
            yield rest[start : start + size]
        if decoder.eof:
            self._members += 1
            self._decoder = None


def filename_from_disposition(header: str | None) -> str | None:
    """The file name proposed by a Content-Disposition header (RFC 6266), unsanitised."""
    if not header:
        return None
    extended = re.search(r"filename\*\s*=\s*([^;]+)", header, re.IGNORECASE)
    if extended:
        value = extended.group(1).strip().strip('"')
        charset, _, rest = value.partition("''")
        # RFC 8187 names two charsets; any other (idna, punycode, utf-7...) is a codec a
        # server should not get us to run on its bytes: the extended name is ignored.
        encoding = _CHARSETS.get(charset.strip().lower() or "utf-8")
        if rest and encoding is not None:
            return unquote(rest, encoding=encoding, errors="replace")
    plain = re.search(r'filename\s*=\s*("((?:[^"\\]|\\.)*)"|[^;]+)', header, re.IGNORECASE)
    if plain:
        quoted = plain.group(2)
        return re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else plain.group(1).strip()
    return None


def _split_extension(name: str) -> tuple[str, str]:
    """("report", ".pdf"), ("archive", ".tar.gz"), ("README", ""): the part numbering keeps."""
    double = re.search(r"\.tar\.[A-Za-z0-9]{1,4}$", name)
    if double and double.start() > 0:
        return name[: double.start()], double.group()
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension) > 16:
        return name, ""
    return stem, "." + extension


def _fit(stem: str, suffix: str) -> str:
    budget = _MAX_NAME_BYTES - len(suffix.encode())
    return (stem.encode()[:budget].decode("utf-8", errors="ignore") or "file") + suffix


def safe_filename(proposed: str | None, fallback: str) -> str:
    """A plain file name for the local disk: no directories, no control characters, no
    leading dots, no trailing dots or spaces, no Windows device name, at most 200 UTF-8
    bytes (extension kept)."""
    name = unicodedata.normalize("NFC", proposed or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]  # the last path component only
    name = _RESERVED.sub("_", name)
    # Unicode tricks: bidirectional overrides and other format characters would disguise
    # the extension ("invoice\u202efdp.exe").
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cf", "Cc", "Cs", "Co"))
    # Windows drops trailing dots and spaces ("a.pdf." is "a.pdf"): drop them here too, so
    # that the name checked below is the name the disk will use.
    name = name.strip().lstrip(".").rstrip(". ").strip()
    if not name or name in (".", ".."):
        name = fallback
    # Windows takes the part before the FIRST dot, without trailing spaces or dots, for the
    # device name: "CON.tar.gz" and "con .pdf" both open the console.
    if name.split(".", 1)[0].rstrip(" .").upper() in _WINDOWS_DEVICES:
        name = "_" + name
    stem, suffix = _split_extension(name)
    return _fit(stem, suffix)


def numbered(name: str, number: int) -> str:
    """``report (1).pdf`` for ``report.pdf``: the name of the n-th file that wanted ``name``."""
    if number == 0:
        return name
    stem, suffix = _split_extension(name)
    return _fit(stem, f" ({number}){suffix}")


def check_folder(dest: object) -> Path:
    """``dest`` as a folder: it need not exist (it is created), but must not be a file.

    A wrong argument (not a path, bytes, a NUL) is an :class:`InvalidInputError`; a folder
    this machine cannot write into is a :class:`DestinationError`, whose message tells the
    filesystem's state (for the caller's logs, not for a service's own callers)."""
    text = os.fspath(dest) if isinstance(dest, (str, os.PathLike)) else None
    if not isinstance(text, str):  # bytes paths too: names are decoded on one rule only
        raise InvalidInputError("dest", f"expected a folder path (str), got {type(dest).__name__}")
    if "\x00" in text:  # no system takes it: Path() would raise ValueError
        raise InvalidInputError("dest", "a folder path has no NUL character")
    folder = Path(text)
    if folder.exists() and not folder.is_dir():
        raise DestinationError("dest", f"{folder} is a file; dest is the folder to write into")
    # Before any request: a folder we cannot create or write into ("/proc", read-only, no
    # permission) is the caller's input, not something to find out after the download.
    try:
        folder.mkdir(parents=True, exist_ok=True)
        descriptor, name = tempfile.mkstemp(dir=folder, prefix=".eattest-", suffix=".check")
        os.close(descriptor)
        os.unlink(name)
    except OSError as error:
        raise DestinationError(
            "dest", f"cannot write into {folder}: {error.strerror or error}"
        ) from None
    return folder


def choose_target(
    dest: Path, headers: Mapping[str, str], fallback_name: str, *, filename: str | None = None
) -> Path:
    """Where a download goes: ``dest`` is always a folder (created if missing); the name is
    ``filename`` if given, else the server's ``Content-Disposition`` name, made safe.

    The name is a wish: ``publish`` numbers it if it is taken when the file is complete.
    """
    proposed = (
        filename
        if filename is not None
        else filename_from_disposition(headers.get("Content-Disposition"))
    )
    target = dest / safe_filename(proposed, fallback_name)
    # Belt and braces: whatever the name, the file lands directly in the folder.
    if target.resolve().parent != dest.resolve():
        target = dest / safe_filename(None, fallback_name)
    return target


def _link_or_reserve(temp: Path, candidate: Path) -> None:
    """Give the complete ``temp`` the name ``candidate`` only if nothing has that name.

    Race-free: ``os.link`` fails with FileExistsError when the name is taken, by anything
    (a file, a folder, a link, another process's download), at the instant of the call. On
    file systems without hard links, the name is reserved with O_CREAT|O_EXCL (also atomic)
    and the complete file renamed onto our own reservation.
    """
    try:
        os.link(temp, candidate)
    except FileExistsError:
        raise
    except OSError as error:
        if error.errno not in _NO_LINKS:
            raise
        descriptor = os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(descriptor)
        os.replace(temp, candidate)
        return
    temp.unlink()


def publish(temp: Path, target: Path, *, overwrite: bool = False) -> Path:
    """Move the complete ``temp`` to ``target``, or to ``target (1)``, ``(2)``... if taken.

    With ``overwrite``, an existing file named ``target`` is replaced (atomically); a folder
    of that name never is. Returns the path written.
    """
    if overwrite:
        try:
            os.replace(temp, target)
            return target
        except (IsADirectoryError, PermissionError, FileExistsError):
            if not target.is_dir():
                raise
    for number in range(_MAX_NUMBER):
        candidate = target.with_name(numbered(target.name, number))
        try:
            _link_or_reserve(temp, candidate)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(errno.EEXIST, f"{_MAX_NUMBER} files already named like it", target)


async def write_atomically(
    chunks: AsyncIterator[bytes],
    target: Path,
    *,
    expected_size: int | None,
    method: str,
    path: str,
    overwrite: bool = False,
) -> Path:
    """Write ``chunks`` to ``target`` all or nothing; returns the path written, which is
    ``target`` or, if that name was taken, a numbered one (see ``publish``).

    ``expected_size`` is the size of the file as written (after any decompression): the
    write stops as soon as it is passed, so a server cannot fill the disk past it.
    """

    def make_temp() -> str:
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor, name = tempfile.mkstemp(dir=target.parent, prefix=".eattest-", suffix=".part")
        os.close(descriptor)
        return name

    folder = target.parent

    async def local(step: Awaitable[T]) -> T:
        # The disk's errors (full, quota, size limit, folder gone) typed as such; those of
        # the network (RequestTimeoutError is an OSError too) pass as they are.
        try:
            return await step
        except OSError as error:
            if isinstance(error, EattestError):
                raise
            raise FileWriteError(folder, error) from error

    temp = Path(await local(anyio.to_thread.run_sync(make_temp)))
    written = 0
    try:
        handle = await local(anyio.open_file(temp, "wb"))
        try:
            async for chunk in chunks:
                written += len(chunk)
                if expected_size is not None and written > expected_size:
                    raise ResponseTooLargeError(
                        f"file is more than the {expected_size} bytes announced; stopped",
                        status=None,
                        method=method,
                        path=path,
                    )
                await local(handle.write(chunk))
            await local(handle.flush())
            await local(anyio.to_thread.run_sync(os.fsync, handle.wrapped.fileno()))
        except BaseException:
            # Whatever stopped the write is what the caller hears of, not the close of a
            # file about to go (a full disk would fail its flush once more).
            with contextlib.suppress(OSError):
                handle.wrapped.close()
            raise
        await local(handle.aclose())
        if expected_size is not None and written != expected_size:
            raise IncompleteResponseError(
                f"file is {written} bytes, {expected_size} were announced", method=method, path=path
            )
        final = await local(
            anyio.to_thread.run_sync(lambda: publish(temp, target, overwrite=overwrite))
        )
    except BaseException:
        # Cancellation included: the partial file goes at once. Synchronously, because an
        # await here would itself be cancelled.
        temp.unlink(missing_ok=True)  # noqa: ASYNC240
        raise
    return final
