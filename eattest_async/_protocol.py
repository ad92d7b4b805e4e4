"""The sans-I/O core: building requests and deciphering responses, as pure functions.

Nothing here touches the network or the clock; ``now`` is always passed in. That is what
lets the whole protocol be tested (and fuzzed) without a server.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, Protocol
from urllib.parse import quote

import attrs
import orjson

from ._exceptions import ApiError, InvalidInputError, UnexpectedResponseError, error_class_for

__all__ = [
    "ApiRequest",
    "DecodeTurn",
    "Envelope",
    "RateLimitInfo",
    "decipher",
    "error_from_response",
    "format_query_value",
    "header",
    "parse_date",
    "parse_datetime",
    "parse_ratelimit",
    "parse_retry_after",
    "plain_number",
    "path",
    "query",
]

# The keys of the envelope: an object with none of them is a bare content object.
_ENVELOPE_KEYS = frozenset(("content", "messages", "page", "size", "pageSize", "totalElements"))
# Retry-After and reset values beyond this are garbage or hostile; a day is plenty.
MAX_WAIT = 86_400.0
_EPOCH_THRESHOLD = 1_000_000_000  # RateLimit-Reset above this is an epoch, below a delay
# What a server's text may put into one of our errors (and so into a log line): each
# message, code or detail is cut, and only the first few items are kept.
MAX_TEXT = 300
MAX_CODE = 32
MAX_ITEMS = 12
_BOM = b"\xef\xbb\xbf"


@attrs.frozen(kw_only=True)
class ApiRequest:
    """One API call, before any I/O: what ``_core`` sends and the retry loop repeats."""

    method: Literal["GET", "POST"]
    path: str  # already encoded, relative to the base URL
    operation: str
    query: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    idempotent: bool = True
    expect_content: bool = True  # False for actions whose answer is only messages
    timeout: float | None = None  # None: the client's default for the kind of request
    # When the call began, on the core's clock, if that was before this request was built
    # (the account id was discovered first): the call's deadline counts from there.
    started: float | None = None


class DecodeTurn(Protocol):
    """A turn to decode an answer's body, for a caller that decodes one answer at a time.

    The pipeline awaits ``acquire()`` once the exchange is over, right before decoding the
    body (the answers waiting meanwhile wait as bytes, the smallest they will ever be), and
    calls ``release()`` itself only when decoding failed (the attempt may be retried); on
    success the caller releases it when done with the content. ``release`` must be safe to
    call when not acquired, and more than once."""

    async def acquire(self) -> None: ...

    def release(self) -> None: ...


@attrs.frozen
class Envelope:
    """A deciphered JSON answer: ``content`` plus the envelope's other fields."""

    content: Any
    messages: Any
    page: int | None
    size: int | None
    total_elements: int | None


@attrs.frozen
class RateLimitInfo:
    """What the server said of its limit: remaining calls and seconds until the window resets."""

    limit: int | None
    remaining: int
    reset_after: float
    window: float | None = None  # seconds the limit counts over, when announced (IETF ``w``)


def path(template: str, **params: object) -> str:
    """Fill a path template, percent-encoding every parameter so none can add a segment.

    The safety net under each parameter's own check: an empty, "." or ".." segment survives
    the encoding, and the URL's normalisation would then ask for another path (".." in
    ``/dossiers/process/{p}`` lists the dossiers), so it is refused, naming the parameter."""
    encoded = {}
    for name, value in params.items():
        text = str(value)
        if text in ("", ".", ".."):
            raise InvalidInputError(name, f"{text!r} cannot be a path segment")
        encoded[name] = quote(text, safe="")
    return template.format(**encoded)


def format_query_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)


def query(**params: object) -> tuple[tuple[str, str], ...]:
    """Query items in the API's spelling; None means 'not sent'."""
    return tuple(
        (name, format_query_value(value)) for name, value in params.items() if value is not None
    )


# -- dates ------------------------------------------------------------------------------

_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?"
)


def parse_datetime(value: str) -> dt.datetime:
    """ISO datetimes as the service writes them: dates, 2/3/6 fractional digits, ``+0000``."""
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        pass
    match = _DATETIME.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"not an ISO date or datetime: {value!r}")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    tz = None
    if offset:
        if offset == "Z":
            tz = dt.timezone.utc
        else:
            sign = -1 if offset[0] == "-" else 1
            digits = offset[1:].replace(":", "")
            tz = dt.timezone(sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    return dt.datetime(
        int(year),
        int(month),
        int(day),
        int(hour or 0),
        int(minute or 0),
        int(second or 0),
        micro,
        tzinfo=tz,
    )


def parse_date(value: str) -> dt.date:
    """A date, or the date part of a datetime."""
    if len(value) == 10:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    return parse_datetime(value).date()


# -- rate limits ----------------------------------------------------------------------


# A number as HTTP headers write it: ASCII digits, an optional sign and decimal part. Not
# what Python's float() also takes: "1_0", "1e9", "inf", "nan", " ٣ " (Arabic digits).
_NUMBER = re.compile(r"[+-]?[0-9]{1,18}(?:\.[0-9]{1,9})?")


def plain_number(text: str) -> float | None:
    """A number written plainly, else None."""
    text = text.strip()
    return float(text) if _NUMBER.fullmatch(text) else None


def _http_date(text: str, now: float) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(text.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp() - now


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value; a header sent several times gives its values joined by commas, as
    a proxy would fold them (``parse_retry_after`` then keeps the most cautious)."""
    getall = getattr(headers, "getall", None)
    if getall is None:
        return headers.get(name)
    values = [str(value) for value in getall(name, ())]
    return ", ".join(values) if values else None


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date).

    ``now`` is the wall-clock time (epoch seconds), needed for the date form. Garbage gives
    None; past dates give 0; anything longer than a day is clamped to a day. Several values
    (repeated headers folded into "3, 4") give the most cautious one: the longest.
    """
    if value is None:
        return None
    parts = value.split(",")
    waits: list[float] = []
    index = 0
    while index < len(parts):
        part = parts[index]
        seconds = plain_number(part)
        if seconds is None:
            seconds = _http_date(part, now)  # the asctime form has no comma
        if seconds is None and index + 1 < len(parts):
            # An IMF or RFC 850 date has one comma, after the weekday: "Sun, 06 Nov ...".
            seconds = _http_date(part + "," + parts[index + 1], now)
            if seconds is not None:
                index += 1
        if seconds is not None:
            waits.append(seconds)
        index += 1
    if not waits:
        return None
    return min(max(max(waits), 0.0), MAX_WAIT)


def _int(value: str | None, *, cautious: Callable[[list[int]], int] = min) -> int | None:
    """An integer header field; of several folded ones ("10, 20"), the ``cautious`` one."""
    if value is None:
        return None
    numbers = [plain_number(part) for part in value.split(",")]
    found = [int(number) for number in numbers if number is not None]
    return cautious(found) if found else None


def _structured_params(value: str) -> dict[str, str]:
    """Parameters of the first item of an RFC 8941 list, e.g. ``"default";r=50;t=30``."""
    first = value.split(",", 1)[0]
    params = {}
    for part in first.split(";")[1:]:
        if "=" in part:
            key, _, raw = part.partition("=")
            params[key.strip().lower()] = raw.strip().strip('"')
    return params


def parse_ratelimit(headers: Mapping[str, str], now: float) -> RateLimitInfo | None:
    """``RateLimit-Limit/Remaining/Reset`` (draft; reset as delay or epoch), or the IETF
    ``RateLimit-Policy``/``RateLimit`` fields. None when absent or unreadable."""
    remaining = _int(headers.get("RateLimit-Remaining"))
    if remaining is not None:
        reset = _int(headers.get("RateLimit-Reset"), cautious=max)
        if reset is None:
            return None
        reset_after = reset - now if reset > _EPOCH_THRESHOLD else float(reset)
        return RateLimitInfo(
            limit=_int(headers.get("RateLimit-Limit")),
            remaining=max(remaining, 0),
            reset_after=min(max(reset_after, 0.0), MAX_WAIT),
        )
    combined = headers.get("RateLimit")
    if combined is None:
        return None
    params = _structured_params(combined)
    remaining, reset = _int(params.get("r")), _int(params.get("t"), cautious=max)
    if remaining is None or reset is None:
        return None
    policy = _structured_params(headers.get("RateLimit-Policy", ""))
    window = _int(policy.get("w"))
    return RateLimitInfo(
        limit=_int(policy.get("q")),
        remaining=max(remaining, 0),
        reset_after=min(max(float(reset), 0.0), MAX_WAIT),
        window=float(window) if window is not None and window > 0 else None,
    )


# -- responses --------------------------------------------------------------------------


def clip(text: str, limit: int = MAX_TEXT) -> str:
    """At most ``limit`` characters of a server's text, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def without_bom(body: bytes) -> bytes:
    """The body without a leading UTF-8 byte order mark (some gateways add one; JSON
    parsers refuse it)."""
    stripped = body.lstrip()
    return stripped[len(_BOM) :] if stripped.startswith(_BOM) else body


def loads(body: bytes) -> Any:
    """A JSON body, a leading byte order mark accepted (``orjson.JSONDecodeError`` else)."""
    return orjson.loads(without_bom(body))


def _as_is(text: str) -> str:
    return text


def message_texts(
    items: object, *, redact: Callable[[str], str] = _as_is
) -> tuple[list[str], list[str]]:
    """(codes, messages) of a list of message items, objects or plain strings: the first
    :data:`MAX_ITEMS`, each text ``redact``-ed then clipped (in that order: a cut through a
    secret would leave its head unrecognised). Redact here any text not redacted already."""
    codes: list[str] = []
    texts: list[str] = []
    if not isinstance(items, list):
        return codes, texts
    for item in items[:MAX_ITEMS]:
        if isinstance(item, Mapping):
            code, text = item.get("code"), item.get("message")
            if isinstance(code, str) and code:
                codes.append(clip(redact(code), MAX_CODE))
            if text is not None:
                texts.append(clip(redact(str(text))))
        elif item is not None:
            line = redact(str(item))
            texts.append(clip(line))
            found = re.match(r"\s*(E\d{3})\b", line[:MAX_TEXT])
            if found:
                codes.append(found.group(1))
    return codes, texts


def error_from_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str,
    request_path: str,
    now: float,
) -> ApiError:
    """The typed error for an error response, whatever shape its body has."""
    codes: list[str] = []
    texts: list[str] = []
    details: dict[str, str] = {}
    data: Any = None
    body = without_bom(body)
    if body.strip():
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
    if isinstance(data, Mapping):
        messages = data.get("messages")
        if isinstance(messages, Mapping):
            codes, texts = message_texts(messages.get("error"))
        for key in ("error", "message", "error_description", "path", "timestamp"):
            value = data.get(key)
            if isinstance(value, (str, int)) and value != "":
                details[key] = clip(str(value))
        if not texts:
            texts = [details[k] for k in ("message", "error_description", "error") if k in details][
                :1
            ]
    if not texts:
        texts = ["HTML page from an intermediary" if body.lstrip()[:1] == b"<" else "no details"]
    retry_after = parse_retry_after(header(headers, "Retry-After"), now)
    cls = error_class_for(status, codes)
    summary = f"HTTP {status}: {texts[0]}" if texts else f"HTTP {status}"
    return cls(
        summary,
        status=status,
        method=method,
        path=request_path,
        codes=codes,
        messages=texts,
        retry_after=retry_after,
        details=details,
    )


def decipher(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str,
    request_path: str,
    now: float,
    expect_content: bool = True,
) -> Envelope:
    """A JSON answer as an :class:`Envelope`, or the typed error it stands for."""
    if not 200 <= status < 300:
        raise error_from_response(
            status, headers, body, method=method, request_path=request_path, now=now
        )

    def unexpected(reason: str) -> UnexpectedResponseError:
        return UnexpectedResponseError(
            f"unexpected response: {reason}", status=status, method=method, path=request_path
        )

    body = without_bom(body)
    if not body.strip():
        if expect_content:
            raise unexpected("empty body")
        return Envelope(None, None, None, None, None)
    content_type = headers.get("Content-Type", "")
    if "html" in content_type.lower() or body.lstrip()[:1] == b"<":
        raise unexpected("an HTML page instead of JSON (a proxy or login page?)")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise unexpected(f"malformed JSON ({exc})") from None
    if isinstance(data, list):  # the EDGE spec documents some lists without an envelope
        return Envelope(data, None, None, None, None)
    if not isinstance(data, Mapping):
        raise unexpected(f"a JSON {type(data).__name__} instead of an object")
    if data and _ENVELOPE_KEYS.isdisjoint(data):  # ...and some objects (v1.3 GET /account)
        return Envelope(data, None, None, None, None)
    messages = data.get("messages")
    content = data.get("content")
    # Errors with no content where content was due: a refusal sent with a 2xx. Content and
    # errors together, or an action's answer (messages only, as v1.1 declares it), are an
    # answer: the caller gets the content and every message (``.messages.error``).
    if (
        expect_content
        and content is None
        and isinstance(messages, Mapping)
        and messages.get("error")
    ):
        codes, texts = message_texts(messages.get("error"))
        cls = error_class_for(status, codes)
        raise cls(
            f"HTTP {status} carrying errors: {texts[0] if texts else ''}",
            status=status,
            method=method,
            path=request_path,
            codes=codes,
            messages=texts,
        )
    if expect_content and "content" not in data:
        raise unexpected("no 'content' in the answer")
    size = data.get("size", data.get("pageSize"))
    return Envelope(
        content,
        messages,
        data.get("page") if isinstance(data.get("page"), int) else None,
        size if isinstance(size, int) else None,
        data.get("totalElements") if isinstance(data.get("totalElements"), int) else None,
    )


def list_content(envelope: Envelope, *, method: str, request_path: str) -> list[Any]:
    """The content of a list answer; a lone object is a list of one (as some captures show)."""
    content = envelope.content
    if content is None:
        return []
    if isinstance(content, Mapping):
        inner = content.get("content")  # the doubly wrapped account example of the docs
        return list(inner) if isinstance(inner, list) else [content]
    if isinstance(content, list):
        return content
    raise UnexpectedResponseError(
        f"unexpected response: content is a {type(content).__name__}",
        status=200,
        method=method,
        path=request_path,
    )


def single_content(envelope: Envelope, *, method: str, request_path: str) -> Mapping[str, Any]:
    """The content of a single-object answer; a one-item list is accepted as that object."""
    content = envelope.content
    if isinstance(content, Mapping):
        inner = content.get("content")
        if isinstance(inner, list) and len(content) == 1:
            content = inner
        else:
            return content
    if isinstance(content, list) and content and isinstance(content[0], Mapping):
        return content[0]
    raise UnexpectedResponseError(
        "unexpected response: no object in content", status=200, method=method, path=request_path
    )


def dumps(value: object) -> bytes:
    return orjson.dumps(value)


def compact(items: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object without the None values (fields the caller did not set)."""
    return {key: value for key, value in items if value is not None}
