"""Redaction: no secret the client knows leaves it in an error or a log, however a server
wrote it back (as it is, in another case, JSON-escaped, percent-encoded, as HTML character
references, escaped twice...).

How: the server's text is *decoded* once into plain characters, each remembering the span
of the original text it came from; the secrets are searched in that decoded text (one
literal pattern, case-insensitive) and the spans they cover are cut from the original.
Linear in the text, and cheap to set up for a new token: a pattern spelling out every
encoding of every character of an 800-character token took 0.4 s of CPU to compile (the
event loop stood still meanwhile) at each renewal. Decoding is exact for a secret none
of whose characters starts an encoding; the rare one with a ``\\``, ``%`` or ``&`` (or
both ``+`` and a space) is searched with a pattern of every spelling of each of its
characters instead (a password: short, so that pattern is cheap).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable

import attrs

from ._exceptions import EattestError

__all__ = ["Redactor", "redacted_url"]

MIN_SECRET = 3  # shorter "secrets" would garble every message they are redacted from
REDACTED = "[redacted]"

# One written-back character in an encoding: a JSON escape (any number of backslashes: a
# JSON string quoted in JSON), an escaped solidus, quote or backslash, a run of percent-
# encoded bytes (``%25`` repeated: encoded more than once), an HTML character reference,
# or ``+`` (a space in a form, or itself).
_ESCAPE = re.compile(
    r"\\+u(?P<u>[0-9a-f]{4})"
    r"|\\+(?P<q>[/\"\\])"
    r"|(?P<p>(?:%(?:25)*[0-9a-f]{2})+)"
    r"|&#(?:x0*(?P<x>[0-9a-f]{1,6})|0*(?P<d>[0-9]{1,7}));?"
    r"|(?P<plus>\+)",
    re.IGNORECASE,
)
_INTRODUCERS = frozenset("\\%&+")  # characters that can start an encoding (_ESCAPE)
_PERCENT_BYTE = re.compile(r"%(?:25)*([0-9a-f]{2})", re.IGNORECASE)


def redacted_url(url: str) -> str:
    """A URL a user gave, fit to quote in an error, a log or a repr: its userinfo as
    ``***@``, its query and fragment as ``?***``/``#***`` (a password or a token may be
    in any of them; redis-py, for one, takes ``?password=``). Never raises, whatever the
    text: it is cut as text, not parsed.

    A password may hold ``/`` (so the userinfo ends at the last ``@`` before the query)
    or ``?``/``#`` (so an ``@`` after them may end it), and ``user:password`` without its
    ``@host`` reads as a host and a port that is not one: then the whole host is hidden.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    cut = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    head, tail = rest[:cut], rest[cut:]
    authority = head.split("/", 1)[0]
    port = authority.rpartition(":")[2] if ":" in authority.rpartition("]")[2] else ""
    if "@" in head:
        head = "***@" + head.rsplit("@", 1)[1]
    elif "@" in tail or (port and not port.isdigit()):
        head = "***" + head[len(authority) :]
    return scheme + sep + head + (tail[0] + "***" if tail else "")


def _units(char: str) -> str:
    """A character as JSON spells it: astral ones as a UTF-16 surrogate pair."""
    point = ord(char)
    if point <= 0xFFFF:
        return char
    high, low = divmod(point - 0x10000, 0x400)
    return chr(0xD800 + high) + chr(0xDC00 + low)


def _fold(text: str) -> str:
    """Lower case, one character for one (so positions keep their meaning), astral
    characters as surrogate pairs (as JSON escapes them)."""
    lowered = text.lower()
    if len(lowered) != len(text):  # a few letters lower to two characters: keep those
        lowered = "".join(low if len(low := char.lower()) == 1 else char for char in text)
    if any(ord(char) > 0xFFFF for char in lowered):
        lowered = "".join(map(_units, lowered))
    return lowered


class _Decoded:
    """Decoded text, and for each of its characters the original span [start, end)."""

    def __init__(self) -> None:
        self.chars: list[str] = []
        self.starts: list[int] = []
        self.ends: list[int] = []

    def plain(self, text: str, start: int, end: int) -> None:
        segment = text[start:end]
        if any(ord(char) > 0xFFFF for char in segment):
            for index in range(start, end):
                self.one(text[index], index, index + 1)
            return
        self.chars.extend(segment)
        self.starts.extend(range(start, end))
        self.ends.extend(range(start + 1, end + 1))

    def one(self, char: str, start: int, end: int) -> None:
        for unit in _units(char):
            self.chars.append(unit)
            self.starts.append(start)
            self.ends.append(end)

    def percent(self, text: str, start: int, end: int) -> None:
        """A run of percent-encoded bytes, decoded as UTF-8 sequence by sequence."""
        found = [
            (m.start(), m.end(), int(m[1], 16)) for m in _PERCENT_BYTE.finditer(text, start, end)
        ]
        index = 0
        while index < len(found):
            lead = found[index][2]
            size = 1 if lead < 0x80 else 2 if lead >> 5 == 6 else 3 if lead >> 4 == 14 else 4
            group = found[index : index + size]
            try:  # a whole sequence, its lead's length: exactly one character
                char = bytes(b for _, _, b in group).decode("utf-8")
            except UnicodeDecodeError:
                group, char = group[:1], chr(0xDC00 + lead)  # as surrogateescape would
            self.one(char, group[0][0], group[-1][1])
            index += len(group)


def _decode(text: str, *, plus_is_space: bool) -> _Decoded:
    decoded = _Decoded()
    position = 0
    for match in _ESCAPE.finditer(text):
        decoded.plain(text, position, match.start())
        start, end = match.span()
        if match["u"] is not None:
            decoded.one(chr(int(match["u"], 16)), start, end)
        elif match["q"] is not None:
            decoded.one(match["q"], start, end)
        elif match["p"] is not None:
            decoded.percent(text, start, end)
        elif match["x"] is not None or match["d"] is not None:
            point = int(match["x"], 16) if match["x"] is not None else int(match["d"])
            if point <= 0x10FFFF:
                decoded.one(chr(point), start, end)
            else:
                decoded.plain(text, start, end)
        else:
            decoded.one(" " if plus_is_space else "+", start, end)
        position = end
    decoded.plain(text, position, len(text))
    return decoded


def _spellings(char: str) -> str:
    """A pattern for one character of a secret as a server may write it back: itself, a
    JSON escape, percent-encoded, or an HTML character reference (see :data:`_ESCAPE`)."""
    point = ord(char)
    if point > 0xFFFF:  # JSON writes it as a UTF-16 surrogate pair
        high, low = divmod(point - 0x10000, 0x400)
        escape = rf"\\+u{0xD800 + high:04x}\\+u{0xDC00 + low:04x}"
    else:
        escape = rf"\\+u{point:04x}"
    percent = "".join(f"%(?:25)*{byte:02x}" for byte in char.encode("utf-8", "surrogatepass"))
    options = [re.escape(char), escape, percent, f"&#0*{point};?", f"&#x0*{point:x};?"]
    if char in '"\\/':
        options.append(r"\\+" + re.escape(char))
    if char == " ":
        options.append(r"\+")
    return "(?:" + "|".join(options) + ")"


def _ambiguous(secret: str) -> bool:
    """Whether the secret's own characters can read as encodings (``%41`` is itself or
    ``A``): then decoding the text first could miss it."""
    return any(char in secret for char in "\\%&") or ("+" in secret and " " in secret)


@attrs.frozen
class _Patterns:
    plain: re.Pattern[str] | None  # unambiguous secrets without a space: in decoded text
    spaced: re.Pattern[str] | None  # ...with a space: in decoded text where + is a space
    spelled: re.Pattern[str] | None  # ambiguous ones: every spelling of every character


def _literals(secrets: Iterable[str]) -> re.Pattern[str] | None:
    longest_first = sorted({_fold(secret) for secret in secrets}, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, longest_first))) if longest_first else None


@functools.lru_cache(maxsize=8)
def _patterns(secrets: tuple[str, ...]) -> _Patterns:
    clear = [secret for secret in secrets if not _ambiguous(secret)]
    ambiguous = sorted((s for s in secrets if _ambiguous(s)), key=len, reverse=True)
    return _Patterns(
        plain=_literals(s for s in clear if " " not in s),
        spaced=_literals(s for s in clear if " " in s),
        spelled=re.compile(
            "|".join("".join(map(_spellings, secret)) for secret in ambiguous), re.IGNORECASE
        )
        if ambiguous
        else None,
    )


def _merged(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every spelling of every secret replaced by ``[redacted]``."""
    patterns = _patterns(secrets)
    spans: list[tuple[int, int]] = []
    folded = _fold(text)
    # Nothing encoded in the text (the usual case): it is its own decoding.
    plain = len(folded) == len(text) and _INTRODUCERS.isdisjoint(text)
    for pattern, plus_is_space in ((patterns.plain, False), (patterns.spaced, True)):
        if pattern is None:
            continue
        if plain:
            spans.extend(match.span() for match in pattern.finditer(folded))
            continue
        decoded = _decode(text, plus_is_space=plus_is_space)
        for match in pattern.finditer(_fold("".join(decoded.chars))):
            spans.append((decoded.starts[match.start()], decoded.ends[match.end() - 1]))
    if patterns.spelled is not None:
        spans.extend(match.span() for match in patterns.spelled.finditer(text))
    if not spans:
        return text
    pieces: list[str] = []
    position = 0
    for start, end in _merged(spans):
        pieces += (text[position:start], REDACTED)
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


class Redactor:
    """Removes every secret the client knows from a server's text (bodies quoted into
    errors, ``error_description``, ``Location`` headers): an IdP or a gateway that echoes
    the password or a token back must not get it into our errors or logs.

    :meth:`scrub` is the safety net applied to every error leaving the core: whatever text
    it carries, redacted.
    """

    def __init__(self, secrets: Callable[[], Iterable[str]]) -> None:
        self._secrets = secrets

    def also(self, *secrets: str) -> Redactor:
        """This redactor, knowing ``secrets`` too (a token a request carried, which its
        manager may have forgotten since: renewals keep only the last few)."""
        known = self._secrets
        return Redactor(lambda: (*known(), *secrets))

    def _known(self) -> tuple[str, ...]:
        return tuple(sorted({s for s in self._secrets() if len(s) >= MIN_SECRET}))

    def text(self, text: str) -> str:
        return redact(text, self._known())

    def bytes(self, data: bytes) -> bytes:
        redacted = self.text(data.decode("utf-8", "surrogateescape"))
        return redacted.encode("utf-8", "surrogateescape")

    def _value(self, value: object) -> object:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, tuple):
            return tuple(self._value(item) for item in value)
        if isinstance(value, list):
            return [self._value(item) for item in value]
        if isinstance(value, dict):
            return {key: self._value(item) for key, item in value.items()}
        return value

    def scrub(self, error: BaseException) -> None:
        """Redact, in place, the message and every text attribute of ``error`` and of the
        library's errors it was caused by; cut any other error from the chain.

        A foreign error cannot be redacted: aiohttp's keep the request they answer (its
        Authorization header with it) and quote the server's raw bytes. What it said is in
        our error's message already (redacted here), so it does not leave with ours.
        """
        seen: set[int] = set()
        current: BaseException | None = error
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            if isinstance(current, EattestError):
                current.args = tuple(self._value(arg) for arg in current.args)
                for name, value in list(vars(current).items()):
                    if not name.startswith("__"):
                        setattr(current, name, self._value(value))
                notes = getattr(current, "__notes__", None)
                if isinstance(notes, list):
                    notes[:] = [str(self._value(note)) for note in notes]
            if current.__cause__ is not None and not isinstance(current.__cause__, EattestError):
                current.__cause__ = None
            if current.__context__ is not None and not isinstance(
                current.__context__, EattestError
            ):
                current.__context__ = None
                current.__suppress_context__ = True
            current = current.__cause__ or current.__context__
