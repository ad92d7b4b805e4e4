"""Reading the CSV files people really have, and the journal of ``eattest create``.

Pure and network-free: the command line (``cli.py``) reads a table with ``read_table`` and
keeps a ``Journal``; both are tested without a server.

Encodings, in this order (deterministic, no guessing from statistics): a byte-order mark
(UTF-8, UTF-16, UTF-32); UTF-16 without a mark, recognised by its zero bytes (Excel's
"Unicode text"); strict UTF-8; Windows-1252 (what Excel writes as "CSV" in France and
western Europe). ``--encoding`` overrides. Separators: ``;``, ``,`` or tab, whichever the
header line uses most. Rows whose cells are all empty (Excel's trailing ``,,,,``) are skipped.
"""

from __future__ import annotations

import csv
import errno
import io
import os
import re
import stat
import time
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "CsvError",
    "Journal",
    "JournalEntry",
    "Table",
    "decode",
    "hidden_character",
    "open_local",
    "read_capped",
    "read_table",
    "spreadsheet_safe",
]

# A header cell is matched to a field by its letters and digits only, case-insensitively:
# "dossierReference", "Dossier reference" and "dossier_reference" are the same column.
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")
_BINARY_PROBE = 8192


class CsvError(ValueError):
    """The file cannot be used as it is; the message says why in one line."""


MiB = 1 << 20


def open_local(path: str | Path, what: str) -> BinaryIO:
    """``path`` opened for reading, if it is a regular file (a symlink to one is fine), else
    a one-line CsvError: a named pipe with no writer would block open() and read() for
    ever, ``/dev/zero`` never ends, and a folder or a socket holds no such file. OSError
    (missing, unreadable) is left to the caller to word."""
    # O_NONBLOCK: opening a named pipe returns at once instead of waiting for a writer.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        descriptor = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        if error.errno == errno.ENXIO:  # what open() says of a socket
            raise CsvError(_not_regular(path, what, "a socket")) from None
        raise
    try:
        mode = os.fstat(descriptor).st_mode  # of what was opened: no race with a rename
        if not stat.S_ISREG(mode):
            raise CsvError(_not_regular(path, what, _kind(mode)))
        if flags & getattr(os, "O_NONBLOCK", 0):
            os.set_blocking(descriptor, True)  # a plain file again, as open() would give
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device"


def _not_regular(path: str | Path, what: str, kind: str) -> str:
    return f"{what} {path} is {kind}, not a regular file"


def read_capped(path: str | Path, limit: int, what: str) -> bytes:
    """The bytes of the regular file ``path`` (``open_local``), read at most ``limit`` + 1
    of them: a file larger than ``limit`` is a one-line CsvError, never a MemoryError.
    OSError (missing, unreadable) is left to the caller to word."""
    with open_local(path, what) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise CsvError(f"{what} {path} is larger than {limit // MiB} MiB: is it the right file?")
    return data


# A cell that starts so is run as a formula by Excel, LibreOffice and Google Sheets (OWASP
# "CSV injection": =HYPERLINK(...) leaking other cells, +cmd|'...'!A0 running a program).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def spreadsheet_safe(value: Any) -> Any:
    """``value`` as a CSV cell a spreadsheet shows as text and never runs: a text starting
    with = + - @ tab or CR gets a leading ``'`` (the OWASP advice; a spreadsheet hides it).
    Numbers stay numbers, a text that is just a number ("-12.5", "+33612345678") included.
    """
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def _key(header: str) -> str:
    return _NOT_ALNUM.sub("", unicodedata.normalize("NFKC", header).lower())


def _utf16_without_mark(data: bytes) -> str | None:
    """'utf-16-le'/'utf-16-be' when every other byte of a text is zero, as in ASCII UTF-16."""
    probe = data[: min(len(data), 4096) // 2 * 2]
    if len(probe) < 4:
        return None
    even_zero = probe[0::2].count(0) / (len(probe) / 2)
    odd_zero = probe[1::2].count(0) / (len(probe) / 2)
    if odd_zero > 0.4 and even_zero < 0.05:
        return "utf-16-le"
    if even_zero > 0.4 and odd_zero < 0.05:
        return "utf-16-be"
    return None


def decode(data: bytes, name: str, encoding: str | None = None) -> tuple[str, str]:
    """(text, encoding used) of a CSV file's bytes, or CsvError with a one-line reason."""
    if encoding is None:
        if data.startswith(b"PK\x03\x04"):
            raise CsvError(
                f"{name} is an Excel workbook (or another zip archive), not a CSV: "
                'in Excel, "Save As" > "CSV UTF-8 (comma delimited)"'
            )
        if data.startswith(b"\xd0\xcf\x11\xe0"):
            raise CsvError(f"{name} is an old Excel .xls workbook, not a CSV: save it as CSV UTF-8")
        for mark, candidate in (
            (b"\xef\xbb\xbf", "utf-8-sig"),
            (b"\xff\xfe\x00\x00", "utf-32"),
            (b"\x00\x00\xfe\xff", "utf-32"),
            (b"\xff\xfe", "utf-16"),
            (b"\xfe\xff", "utf-16"),
        ):
            if data.startswith(mark):
                encoding = candidate
                break
        else:
            encoding = _utf16_without_mark(data)
    if encoding is not None:
        try:
            text = data.decode(encoding)
        except LookupError:
            raise CsvError(f"unknown encoding {encoding!r}") from None
        except UnicodeDecodeError as error:
            raise CsvError(
                f"{name} is not valid {encoding} (byte {error.start}); "
                "pass --encoding with the file's encoding"
            ) from None
    else:
        try:
            text, encoding = data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            try:
                text, encoding = data.decode("cp1252"), "cp1252"
            except UnicodeDecodeError as error:
                # The bytes cp1252 leaves undefined are C1 control codes: not text.
                raise CsvError(
                    f"{name} is not a text file (byte {error.start} is neither UTF-8 nor "
                    "Windows-1252); expected a CSV, or pass --encoding"
                ) from None
    _refuse_binary(text[:_BINARY_PROBE], name)
    return text, encoding


def _refuse_binary(text: str, name: str) -> None:
    for position, char in enumerate(text):
        if char in "\t\r\n\f":
            continue
        if char == "\x00" or unicodedata.category(char) == "Cc":
            raise CsvError(
                f"{name} is not a text file (binary content at character {position}); "
                "expected a CSV with a header line"
            )


# Characters that would make a cell not what it shows: bidi controls reorder what is shown
# (U+202E shows "REF-1" as "1-FER"); zero-width ones make two references look the same.
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def hidden_character(cell: str, *, free_text: bool = False) -> str | None:
    """Why ``cell`` cannot be sent as it is, or None: a control character (NUL, ESC, a line
    break...), a line separator, or an invisible format character. ``free_text`` (a
    description) may hold line breaks, tabs and format characters other than bidi controls.
    """
    for position, char in enumerate(cell, start=1):
        if free_text and char in "\t\r\n":
            continue  # a multi-line cell, as Excel writes Alt+Enter
        category = unicodedata.category(char)
        if category == "Cc" or char in _BIDI or (not free_text and category in ("Cf", "Zl", "Zp")):
            code = ord(char)
            shown = f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
            return f"an invisible or control character ({shown}, character {position})"
    return None


def _separator(header_line: str) -> str:
    """The separator the header line uses most: ';' (Excel in France), ',' or tab."""
    unquoted = re.sub(r'"[^"]*"', "", header_line)
    counts = {sep: unquoted.count(sep) for sep in (";", ",", "\t")}
    best = max(counts, key=lambda sep: (counts[sep], sep == ","))
    return best if counts[best] else ","


class Table:
    """A CSV read: the separator and encoding found, the columns, the data rows.

    ``rows`` are (row number as a spreadsheet shows it, {field: cell}) for every row that
    has a non-empty cell; the header is row 1.
    """

    def __init__(
        self,
        *,
        encoding: str,
        separator: str,
        columns: dict[int, str],
        ignored: list[str],
        rows: list[tuple[int, dict[str, str]]],
    ) -> None:
        self.encoding = encoding
        self.separator = separator
        self.columns = columns
        self.ignored = ignored
        self.rows = rows


def read_table(
    data: bytes,
    name: str,
    *,
    fields: Iterable[str],
    required: Iterable[str],
    encoding: str | None = None,
) -> Table:
    """The data rows of a CSV, with its header matched to ``fields`` (API spelling).

    CsvError for a file that is empty, binary, has no recognisable header, lacks a required
    column, or has no data row: each before anything is sent anywhere.
    """
    text, used = decode(data, name, encoding)
    lines = text.splitlines()
    first = next((line for line in lines if line.strip(" \t,;\"'")), None)
    if first is None:
        raise CsvError(
            f"{name} is empty: expected a header line ({', '.join(required)}, ...) "
            "and one row per dossier"
        )
    separator = _separator(first)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=separator)
    by_key = {_key(field): field for field in fields}
    header: list[str] | None = None
    columns: dict[int, str] = {}
    ignored: list[str] = []
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        for number, cells in enumerate(reader, start=1):
            if not any(cell.strip() for cell in cells):
                continue  # an empty row, such as Excel's trailing ",,,,"
            if header is None:
                header = [cell.strip() for cell in cells]
                columns, ignored = _match_header(header, by_key, required, name)
                continue
            if len(cells) > len(header) and any(c.strip() for c in cells[len(header) :]):
                raise CsvError(
                    f"{name} row {number}: {len(cells)} cells, "
                    f"the header has {len(header)} (a separator inside a value? quote it)"
                )
            row = {
                columns[position]: cell.strip()
                for position, cell in enumerate(cells)
                if position in columns
            }
            rows.append((number, row))
    except csv.Error as error:
        raise CsvError(f"{name} is not a readable CSV: {error}") from None
    if not rows:
        raise CsvError(f"{name} has a header but no data rows: nothing to create")
    return Table(encoding=used, separator=separator, columns=columns, ignored=ignored, rows=rows)


def _match_header(
    header: list[str], by_key: Mapping[str, str], required: Iterable[str], name: str
) -> tuple[dict[int, str], list[str]]:
    columns: dict[int, str] = {}
    ignored: list[str] = []
    for position, cell in enumerate(header):
        field = by_key.get(_key(cell))
        if field is None:
            if cell:
                ignored.append(cell)
            continue
        if field in columns.values():
            raise CsvError(f"{name}: the column {field} appears twice in the header")
        columns[position] = field
    missing = [field for field in required if field not in columns.values()]
    if len(missing) == len(list(required)):
        shown = ", ".join(repr(c[:30]) for c in header[:5])
        raise CsvError(
            f"{name} does not start with a header line naming the columns "
            f"{', '.join(required)} (its first line reads {shown})"
        )
    if missing:
        raise CsvError(f"{name} has no column {', '.join(missing)} in its header")
    return columns, ignored


# -- the journal of a creation run --------------------------------------------------------

JOURNAL_COLUMNS = [
    "row",
    "dossierReference",
    "companyIdValue",
    "status",
    "processId",
    "dossierId",
    "codes",
    "error",
    "at",
]
# status: what is known about a row, the last line for a row wins.
#   sending  - about to be sent: if nothing follows, it may or may not exist on the server
#   sent     - accepted, its creation process is running (processId)
#   created  - the dossier exists (dossierId)
#   exists   - the service says this reference already exists for this supplier (E202)
#   failed   - refused or failed: not created (codes, error); a re-run tries again
#   unknown  - sent, but no answer came back: a re-run checks the server first
DONE = frozenset({"created", "exists"})
UNCERTAIN = frozenset({"sending", "unknown"})


JournalEntry = dict[str, str]  # one line of the journal, by JOURNAL_COLUMNS
_EXACT = ("dossierReference", "companyIdValue")  # a row's identity (row_key), never folded


def row_key(company_id_value: str, reference: str) -> tuple[str, str]:
    """A dossier's identity across runs: the reference is unique per supplier."""
    return company_id_value.replace(" ", "").upper(), reference.strip()


JOURNAL_LIMIT = 512 * MiB  # several lines per row of a CSV of at most CSV_LIMIT
CSV_LIMIT = 64 * MiB  # hundreds of thousands of dossiers; more is not a CSV for create


class Journal:
    """The results file of ``eattest create``, appended and fsync'ed as each row's outcome
    becomes known, so that whatever stops the run (Ctrl-C, kill -9, a crash, a power cut)
    leaves a file that says what was sent. ``compact()`` rewrites it with one line per row.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.last: dict[tuple[str, str], JournalEntry] = {}
        self.recorded = 0  # lines this run appended
        self._handle: io.TextIOWrapper | None = None

    def load(self) -> int:
        """Read an earlier run's journal, if any; a line cut by a kill is ignored.

        Returns the number of lines read. CsvError if the file is not such a journal.
        """
        try:
            data = read_capped(self.path, JOURNAL_LIMIT, "the results file")
        except FileNotFoundError:
            return 0
        text = data.decode("utf-8", errors="replace")
        if text and not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]  # the last line was being written
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if text.strip() and (reader.fieldnames or []) != JOURNAL_COLUMNS:
            raise CsvError(
                f"{self.path} exists and is not a results file of eattest create: "
                "move it away or choose another with --out"
            )
        count = 0
        for line in reader:
            if None in line or not line.get("status"):
                continue  # damaged line
            entry = {k: v or "" for k, v in line.items()}
            self.last[row_key(entry["companyIdValue"], entry["dossierReference"])] = entry
            count += 1
        return count

    def open(self) -> None:
        """Open for appending (OSError if it cannot be written: before anything is sent)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._handle = open(self.path, "a", encoding="utf-8", newline="")  # noqa: SIM115
        if new:
            self._write_line(JOURNAL_COLUMNS)
        elif self._tail_is_cut():
            self._handle.write("\n")  # end the line a kill cut, so ours starts on its own
            self._sync()

    def _tail_is_cut(self) -> bool:
        with open(self.path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) != b"\n"

    def record(
        self, row: int, reference: str, company_id_value: str, status: str, **fields: Any
    ) -> None:
        """Append one row's news and force it to disk before going on."""
        entry = {
            "row": str(row),
            "dossierReference": reference,
            "companyIdValue": company_id_value,
            "status": status,
            # What the service said (an error message, codes) opens in a spreadsheet too.
            **{k: "" if v is None else spreadsheet_safe(str(v)) for k, v in fields.items()},
            "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        for column in JOURNAL_COLUMNS:
            entry.setdefault(column, "")
        self.last[row_key(company_id_value, reference)] = entry
        # One line per record, always: a newline inside a message would make a cut line
        # look like a complete one. What the service said is folded onto one line; the
        # row's identity is written exactly (folding "A  B" to "A B" would match another
        # row, and not its own on the next run), and the rows were checked to hold no
        # line break.
        cells = [
            entry[c] if c in _EXACT else " ".join(str(entry[c]).split()) for c in JOURNAL_COLUMNS
        ]
        if any(ch in entry[c] for c in _EXACT for ch in "\r\n"):
            raise ValueError(f"row {row}: a line break in its identity cannot be journaled")
        self._write_line(cells)
        self.recorded += 1

    def _write_line(self, cells: list[str]) -> None:
        assert self._handle is not None
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(cells)
        try:
            self._handle.write(buffer.getvalue())
        except OSError as error:  # a full disk: say which file
            raise OSError(error.errno, error.strerror, str(self.path)) from None
        self._sync()

    def _sync(self) -> None:
        assert self._handle is not None
        try:
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as error:
            raise OSError(error.errno, error.strerror, str(self.path)) from None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def compact(self) -> None:
        """Rewrite the file with the last line of each row, atomically (temp, fsync, rename)."""
        self.close()
        entries = sorted(self.last.values(), key=lambda e: int(e["row"] or 0))
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with open(temp, "w", encoding="utf-8", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=JOURNAL_COLUMNS, lineterminator="\n")
                writer.writeheader()
                writer.writerows(entries)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
        finally:
            temp.unlink(missing_ok=True)
