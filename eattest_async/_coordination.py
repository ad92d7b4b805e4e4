"""Coordination of several processes that use one account: one token, one rate gate.

A :class:`Coordinator` gives a client the two things it may share with other processes,
both keyed by environment + username (hashed; never the password):

- a gate store (the :class:`~eattest_async._ratelimit.GateStore` of the rate gate): the
  Retry-After deadline ("extend, never shorten") and the pacing state (a GCRA theoretical
  arrival time, and the announced or learned limit), each step one atomic Lua script;
- a token store (the ``TokenStore`` of the token manager): one grant for all processes,
  under a Redis lock with an expiry and a bounded wait; the token is sealed (AES-GCM with
  a key derived from the account's password by scrypt), so that neither Redis nor its
  backups nor a log can reveal it.

:class:`LocalCoordinator` (the default) keeps everything in the process: today's behaviour.
:class:`RedisCoordinator` shares through Redis (``pip install 'eattest-async[redis]'``).

Redis down, slow, unreachable, or answering what Redis running these commands never
would (a reply of another shape: whatever listens in its place): every call is bounded by
``timeout`` and each reply by size (1 MiB, 256 items, 8 levels: ours are far smaller);
the first failure of an outage emits a :class:`CoordinationWarning` (and a log line),
then either the client carries on with in-process state (``on_unavailable="local"``: the
gate paces at the shared limit divided by the processes last seen, the token is the
process's own) or every call fails with :class:`CoordinationError`
(``on_unavailable="fail"``). Redis is tried again ``retry_every`` seconds later; what was
learned meanwhile (deadline, pacing) is written back, so that a restarted, empty Redis
resumes where the processes are.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import math
import os
import secrets
import threading
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, NoReturn, Protocol, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import anyio
import orjson

from ._auth import TokenRecord, TokenStore
from ._config import Environment
from ._exceptions import EattestError, InvalidInputError
from ._protocol import clip
from ._ratelimit import FREED_MAX, BudgetReport, GateStore, Reservation, window_hold
from ._redact import Redactor, redacted_url

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "CoordinationError",
    "CoordinationWarning",
    "Coordinator",
    "LocalCoordinator",
    "RedisCoordinator",
    "coordination_key",
    "coordinator_from_env",
]

logger = logging.getLogger("eattest_async")

T = TypeVar("T")


class CoordinationWarning(UserWarning):
    """The coordination backend (Redis) cannot be reached: this process falls back to
    in-process state until it can (``RedisCoordinator(on_unavailable="local")``)."""


class CoordinationError(EattestError):
    """The coordination backend (Redis) cannot be reached and the coordinator was told to
    fail rather than fall back (``RedisCoordinator(on_unavailable="fail")``)."""


def coordination_key(environment: Environment, username: str | None) -> str:
    """What processes sharing an account share: a hash of environment and username."""
    material = "\n".join(
        (environment.token_url, environment.base_url, environment.client_id, username or "")
    )
    return hashlib.sha256(material.encode()).hexdigest()[:32]


# -- Lua: each script is one atomic step on one hash (so it suits Redis Cluster too) ----
#
# Times are wall-clock seconds of the callers (hosts are expected NTP-synchronised),
# passed and returned as strings: Redis turns Lua numbers into integers.

# give_back() of LocalGateStore: the caller's unused reservation (slot, tat, number) is
# rolled back while it is the last one (then each slot given back earlier that is the last
# in turn: the latest one aside); otherwise it is set aside (h:freed, by slot) for the next
# reservations. Returns tat and count as they are then.
_GIVE_BACK_STEP = """
local function give_back(h, tat, count, slot, given_tat, number, ttl)
  local f = h .. ':freed'
  if not (math.abs(tat - given_tat) < 0.00001 and count == number) then
    redis.call('ZADD', f, slot, string.format('%.6f %.6f %d', slot, given_tat, number))
    redis.call('ZREMRANGEBYRANK', f, FREED_MAX, -1)  -- beyond: those slots are lost
    redis.call('EXPIRE', f, ttl)
    return tat, count
  end
  tat, count = slot, count - 1
  while true do
    local last = redis.call('ZREVRANGE', f, 0, 0)
    if #last == 0 then break end
    local s, t, n = string.match(last[1], '^(%S+) (%S+) (%S+)$')
    if not (math.abs(tonumber(t) - tat) < 0.00001 and tonumber(n) == count) then break end
    redis.call('ZREM', f, last[1])
    tat, count = tonumber(s), count - 1
  end
  return tat, count
end
""".replace("FREED_MAX", str(FREED_MAX))

_RESERVE = (
    _GIVE_BACK_STEP
    + """
local h = KEYS[1]
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local not_before = tonumber(ARGV[3])
local latest = tonumber(ARGV[4])
local floor_tat = tonumber(ARGV[5])
local floor_deadline = tonumber(ARGV[6])
local member = ARGV[7]
local ttl = tonumber(ARGV[8])
local given_slot = tonumber(ARGV[9])
local given_tat = tonumber(ARGV[10])
local floor_count = tonumber(ARGV[11])
local given_number = tonumber(ARGV[12])
local resync = ARGV[13] == '1'
-- The caller's floors stand in for a state Redis lost (emptied), or for the caller's own
-- reservations while Redis was away; not otherwise: a slot given back lowers tat and count
-- below what the callers saw.
local stored = redis.call('HMGET', h, 'tat', 'count')
local tat = tonumber(stored[1] or '0')
local count = tonumber(stored[2] or '0')
if stored[1] == false or resync then tat = math.max(tat, floor_tat) end
if stored[2] == false then count = math.max(count, floor_count) end
if given_slot ~= nil and given_tat ~= nil and given_number ~= nil then
  tat, count = give_back(h, tat, count, given_slot, given_tat, given_number, ttl)
end
local deadline = math.max(tonumber(redis.call('HGET', h, 'deadline') or '0'), floor_deadline)
local number = count + 1
-- window_hold() of _ratelimit.py: beyond the reported budget, not before the window's end
local r = redis.call('HMGET', h, 'report_number', 'report_remaining', 'report_end')
local r_number, r_remaining, r_end = tonumber(r[1]), tonumber(r[2]), tonumber(r[3])
local function held(at)
  if r_number ~= nil and r_remaining ~= nil and r_end ~= nil and at < r_end
     and number > r_number + r_remaining then
    return r_end
  end
  return at
end
local slot = held(math.max(now, tat, deadline, not_before))
-- A slot given back, earlier: taken instead (those past or in a cooldown are dropped).
local f = h .. ':freed'
local reused = nil
redis.call('ZREMRANGEBYSCORE', f, '-inf', '(' .. string.format('%.6f', math.max(now, deadline)))
local free = redis.call('ZRANGEBYSCORE', f, string.format('%.6f', math.max(now, deadline,
                        not_before)), '+inf', 'LIMIT', 0, 1)
if #free > 0 then
  local s = tonumber(string.match(free[1], '^(%S+) '))
  if s < slot and held(s) == s then
    slot, reused = s, free[1]
  end
end
local kept = 0
if latest == nil or slot <= latest then
  kept = 1
  if reused ~= nil then
    redis.call('ZREM', f, reused)  -- its place in the schedule: tat stays
  else
    tat = slot + interval
  end
  count = number
end
redis.call('HSET', h, 'tat', string.format('%.6f', tat),
           'deadline', string.format('%.6f', deadline), 'count', string.format('%d', count))
redis.call('EXPIRE', h, ttl)
local m = h .. ':members'
redis.call('ZADD', m, now, member)
redis.call('ZREMRANGEBYSCORE', m, '-inf', now - 60)
redis.call('EXPIRE', m, 120)
return {string.format('%.6f', slot), redis.call('ZCARD', m), number, kept}
"""
)

_GIVE_BACK = (
    _GIVE_BACK_STEP
    + """
local h = KEYS[1]
local stored = redis.call('HMGET', h, 'tat', 'count')
if stored[1] == false or stored[2] == false then
  return '0'  -- emptied: nothing to roll back, nor any schedule to set a slot aside in
end
local tat, count = tonumber(stored[1]), tonumber(stored[2])
local new_tat, new_count = give_back(h, tat, count, tonumber(ARGV[1]), tonumber(ARGV[2]),
                                     tonumber(ARGV[3]), tonumber(ARGV[4]))
if new_count ~= count then
  redis.call('HSET', h, 'tat', string.format('%.6f', new_tat),
             'count', string.format('%d', new_count))
end
return string.format('%.6f', new_tat)
"""
)

_REPORT = """
-- merge_report() of _ratelimit.py
local h = KEYS[1]
local number = tonumber(ARGV[1])
local remaining = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local sent = tonumber(ARGV[4])
local window_end = tonumber(ARGV[5])
local r = redis.call('HMGET', h, 'report_number', 'report_remaining', 'report_end',
                     'report_opened', 'report_previous_end')
local r_number, r_remaining = tonumber(r[1]), tonumber(r[2])
local r_end, r_opened = tonumber(r[3]), tonumber(r[4])
local r_previous = tonumber(r[5])  -- nil: no window before
local opened, previous = sent, nil
if r_number ~= nil and r_remaining ~= nil and r_end ~= nil and r_opened ~= nil then
  if number < r_number then
    if not (math.max(r_opened, r_previous or r_opened) <= sent and sent < r_end) then
      return 0  -- an earlier window's answer, come late
    end
    number, remaining = r_number, math.min(r_remaining, remaining)
    window_end, opened, previous = r_end, r_opened, r_previous
  else
    local left = math.max(0, r_number + r_remaining - number)
    local rise
    if limit == nil then
      rise = remaining > left
    else
      rise = remaining == limit - 1 or remaining - left > limit / 2
    end
    if sent >= r_end or rise then
      previous = r_end
      local answered = tonumber(ARGV[7])
      if answered ~= nil then previous = math.min(r_end, answered) end
    elseif r_previous ~= nil and sent < r_previous and remaining < left then
      return 0  -- arrived in the previous window
    else
      remaining = math.min(r_remaining, remaining)
      window_end, opened, previous = math.min(r_end, window_end), r_opened, r_previous
    end
  end
end
redis.call('HSET', h, 'report_number', string.format('%d', number),
           'report_remaining', string.format('%d', remaining),
           'report_end', string.format('%.6f', window_end),
           'report_opened', string.format('%.6f', opened),
           'report_previous_end', previous and string.format('%.6f', previous) or '')
redis.call('EXPIRE', h, tonumber(ARGV[6]))
return 1
"""

_EXTEND_DEADLINE = """
local h = KEYS[1]
local deadline = math.max(tonumber(redis.call('HGET', h, 'deadline') or '0'), tonumber(ARGV[1]))
redis.call('HSET', h, 'deadline', string.format('%.6f', deadline))
redis.call('EXPIRE', h, tonumber(ARGV[2]))
return string.format('%.6f', deadline)
"""

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

_STATE_TTL = 86_400  # seconds the shared gate state outlives its last use
_MAX_BUDGET = 1_000_000_000  # a RateLimit-Remaining above it holds nothing anyway


def _num(value: float) -> str:
    """A number as the scripts read it: finite (Lua's tonumber reads no 'inf' or 'nan')."""
    if value != value:  # NaN
        return "0"
    return repr(min(max(float(value), -1e15), 1e15))


def _sha1(lua: str) -> str:
    return hashlib.sha1(lua.encode(), usedforsecurity=False).hexdigest()


class _Unavailable(Exception):
    """Redis could not answer this call in time (internal: callers fall back)."""


class UnexpectedReply(Exception):
    """A reply that is not what the command or script returns (internal: Redis, or
    whatever answers in its place, is then unavailable)."""


# -- what each reply must be: a kind, or a list of exactly so many items of their kinds ---


def _finite(item: object) -> float:
    """A number as the scripts return it: an integer or a string of digits, finite."""
    if isinstance(item, bool) or not isinstance(item, (int, bytes)):
        raise UnexpectedReply(f"{type(item).__name__} where a number was expected")
    try:
        value = float(item)
    except (ValueError, OverflowError):
        value = math.nan
    if not math.isfinite(value):
        raise UnexpectedReply("not a finite number")
    return value


def _whole(item: object) -> int:
    """A Lua number (Redis returns it as an integer)."""
    if isinstance(item, bool) or not isinstance(item, int):
        raise UnexpectedReply(f"{type(item).__name__} where an integer was expected")
    return item


def _finite_or_none(item: object) -> float | None:
    """A hash field (HMGET): absent, or a number as the scripts write it."""
    return None if item is None else _finite(item)


def _blob_or_none(item: object) -> bytes | None:
    """A string value (GET): absent, or bytes."""
    if item is not None and not isinstance(item, bytes):
        raise UnexpectedReply(f"{type(item).__name__} where a string was expected")
    return item


def _set_or_not(item: object) -> bool:
    """SET's answer as redis-py returns it: True (OK), or None (NX: already set)."""
    if item is not True and item is not None:
        raise UnexpectedReply(f"{type(item).__name__} where OK or nil was expected")
    return item is True


def _items(*kinds: Callable[[object], Any]) -> Callable[[object], tuple[Any, ...]]:
    """A list of exactly ``len(kinds)`` items, each of its kind."""

    def check(reply: object) -> tuple[Any, ...]:
        if not isinstance(reply, list) or len(reply) != len(kinds):
            found = f"{len(reply)} items" if isinstance(reply, list) else type(reply).__name__
            raise UnexpectedReply(f"{found} where a list of {len(kinds)} was expected")
        return tuple(kind(item) for kind, item in zip(kinds, reply, strict=True))

    return check


# -- what redis-py may read of one reply ------------------------------------------------------

# Our replies are a sealed token (a few KB) or a few numbers: anything far larger, longer or
# deeper is not Redis answering us, and must not be read into memory (the socket timeout
# bounds the time only) nor recursed into (redis-py's parser recurses once per level).
_MAX_REPLY_BYTES = 1 << 20
_MAX_REPLY_ITEMS = 256  # of one array, set or map (HELLO's list of modules is the longest)
_MAX_REPLY_DEPTH = 8
_AGGREGATES = (b"*", b"%", b"~", b">", b"|")  # RESP2 and RESP3 types announcing a count


@functools.lru_cache(maxsize=2)
def _bounded_parser(protocol: int) -> type[Any]:
    """redis-py's pure-Python parser for ``protocol`` (never hiredis, which takes any
    size), refusing a reply beyond the bounds above with ``InvalidResponse`` (redis-py
    then drops the connection). Relies on the parser's private ``_read``, ``_readline``
    and ``_read_response`` (redis-py 5 to 8)."""
    from redis._parsers import _AsyncRESP2Parser, _AsyncRESP3Parser
    from redis.exceptions import InvalidResponse

    base: type[Any] = _AsyncRESP3Parser if protocol == 3 else _AsyncRESP2Parser

    class Bounded(base):  # type: ignore[misc]
        _depth = 0

        async def _read(self, length: int) -> Any:
            # Checked before a byte of it is read: the length is announced first.
            if not 0 <= length <= _MAX_REPLY_BYTES - self._pos:
                raise InvalidResponse(f"a reply over {_MAX_REPLY_BYTES} bytes refused")
            return await super()._read(length)

        async def _readline(self) -> Any:
            line = await super()._readline()  # asyncio bounds one line (64 KiB)
            if self._pos > _MAX_REPLY_BYTES:
                raise InvalidResponse(f"a reply over {_MAX_REPLY_BYTES} bytes refused")
            count = line[1:] if line[:1] in _AGGREGATES else b""
            if count.isdigit() and int(count) > _MAX_REPLY_ITEMS:
                raise InvalidResponse(f"a reply over {_MAX_REPLY_ITEMS} items refused")
            return line

        async def _read_response(self, *args: Any, **kwargs: Any) -> Any:
            self._depth += 1
            try:
                if self._depth > _MAX_REPLY_DEPTH:
                    raise InvalidResponse(f"a reply over {_MAX_REPLY_DEPTH} levels refused")
                return await super()._read_response(*args, **kwargs)
            finally:
                self._depth -= 1

    return Bounded


def _redis_protocol(url: str) -> Any:
    """The RESP version redis-py speaks for ``url`` (``?protocol=``, else its default:
    3 from redis-py 8, 2 before); ValueError where redis-py would fail at first use."""
    import redis.utils
    from redis.asyncio.connection import parse_url

    protocol = parse_url(url).get("protocol")
    return getattr(redis.utils, "DEFAULT_RESP_VERSION", 2) if protocol is None else protocol


class _Connection:
    """One lazily created ``redis.asyncio`` client, every call bounded, outages tracked."""

    def __init__(
        self, url: str, *, timeout: float, retry_every: float, on_unavailable: str
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.retry_every = retry_every
        self.on_unavailable = on_unavailable
        self._redis: Redis | None = None
        self._down_until = 0.0  # monotonic: no attempt before it
        self._outage = False
        self.failures = 0  # calls that failed or were skipped for an outage

    def _client(self) -> Redis:
        if self._redis is None:
            from redis.asyncio import Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            # One retry, at once: a pooled connection found closed (Redis restarted) is
            # replaced; more would only delay the fallback. ``call`` bounds the whole.
            protocol = _redis_protocol(self.url)
            self._redis = Redis.from_url(
                self.url,
                parser_class=_bounded_parser(protocol),
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
                retry=Retry(NoBackoff(), 1),
                health_check_interval=0,
            )
        return self._redis

    @property
    def outage(self) -> bool:
        """Whether the last call failed (until one succeeds)."""
        return self._outage

    @property
    def available(self) -> bool:
        return not self._outage or time.monotonic() >= self._down_until

    async def call(
        self, operation: Callable[[Redis], Awaitable[object]], expect: Callable[[object], T]
    ) -> T:
        """Run one Redis operation within ``timeout`` and return its reply as ``expect``
        reads it; raise ``_Unavailable`` (or, when configured to fail,
        :class:`CoordinationError`) when Redis cannot answer, or answers what no Redis
        running our commands would."""
        if not self.available:
            self.failures += 1
            self._unavailable(None)
        try:
            with anyio.fail_after(self.timeout * 3):
                reply = await operation(self._client())
            result = expect(reply)
        except Exception as exc:
            # Not only RedisError, OSError and timeouts: redis-py's parser lets a garbled
            # reply raise ValueError and the like. Cancellation is no Exception: it goes on.
            self.failures += 1
            self._down_until = time.monotonic() + self.retry_every
            if not self._outage:
                self._outage = True
                message = (
                    f"Redis at {self._redacted_url()} is unavailable "
                    f"({type(exc).__name__}: {self._quoted(exc)}); "
                    + (
                        "failing as configured"
                        if self.on_unavailable == "fail"
                        else "this process falls back to its own token and gate, "
                        "pacing at a conservative share of the limit"
                    )
                )
                logger.warning("%s", message)
                warnings.warn(message, CoordinationWarning, stacklevel=2)
            self._unavailable(exc)
        if self._outage:
            self._outage = False
            logger.warning("Redis at %s is reachable again", self._redacted_url())
        return result

    async def script(
        self, lua: str, key: str, args: tuple[str, ...], expect: Callable[[object], T]
    ) -> T:
        """Run a Lua script atomically on ``key`` (EVALSHA; the source only when Redis
        lost its script cache, e.g. after a restart)."""
        from redis.exceptions import NoScriptError

        sha = _sha1(lua)

        async def run(redis: Redis) -> object:
            try:
                return await redis.evalsha(sha, 1, key, *args)
            except NoScriptError:
                return await redis.eval(lua, 1, key, *args)

        return await self.call(run, expect)

    def _unavailable(self, exc: BaseException | None) -> NoReturn:
        if self.on_unavailable == "fail":
            raise CoordinationError(
                f"Redis at {self._redacted_url()} is unavailable"
                + (f" ({type(exc).__name__})" if exc is not None else "")
            ) from exc
        raise _Unavailable from exc

    def _redacted_url(self) -> str:
        # redis://user:password@host, or ?password=: never in a log line.
        return redacted_url(self.url)

    def _passwords(self) -> list[str]:
        try:
            parts = urlsplit(self.url)
            found = [unquote(parts.password)] if parts.password else []
        except ValueError:
            return []
        return found + parse_qs(parts.query).get("password", [])

    def _quoted(self, exc: BaseException) -> str:
        """An error's text for the warning: Redis's own words (or an impostor's) may quote
        the password it was sent, and be of any length."""
        return clip(Redactor(self._passwords).text(str(exc)))

    async def aclose(self) -> None:
        redis, self._redis = self._redis, None
        if redis is not None:
            with anyio.move_on_after(self.timeout * 3, shield=True):
                await redis.aclose()


# -- the gate store -----------------------------------------------------------------------


class RedisGateStore:
    """The rate gate's state in Redis, shared by every process of the account.

    While Redis is unavailable, calls go to an in-process store instead; its reservations
    are spaced by ``interval`` times the number of processes last seen, so that together
    they stay within the limit. What this process has seen (the latest theoretical arrival
    time and deadline) is passed to every script, so an emptied Redis (restarted without
    persistence) picks up again from there rather than from zero; the arrival time counts
    only then, or after this process reserved alone: slots given back (see
    :meth:`~eattest_async._ratelimit.GateStore.give_back`) lower it below what was seen.
    """

    def __init__(self, connection: _Connection, key: str) -> None:
        self._connection = connection
        self._hash = f"eattest:{{{key}}}:gate"  # {hash tag}: one cluster slot per account
        self._member = f"{os.getpid()}-{secrets.token_hex(4)}"
        # What this process has seen (and, while Redis is away, its own GCRA state).
        self._seen_tat = 0.0
        self._seen_number = 0  # the highest reservation number seen (an emptied Redis resumes)
        self._seen_deadline = 0.0
        self._resync = False  # reserved while Redis was away: Redis must learn of those slots
        self.peers = 1  # processes seen sharing this gate in the last minute

    async def reserve(
        self,
        *,
        now: float,
        interval: float,
        not_before: float,
        latest: float | None = None,
        give_back: tuple[float, float, int] | None = None,
    ) -> Reservation:
        spacing = max(0.0, interval)
        if give_back is not None:
            self._roll_back_seen(*give_back)
        # A reservation made while Redis was away (number 0) is only this process's.
        given = give_back if give_back is not None and give_back[2] > 0 else None
        try:
            slot, peers, number, kept = await self._connection.script(
                _RESERVE,
                self._hash,
                (
                    _num(now),
                    _num(spacing),
                    _num(not_before),
                    "" if latest is None else _num(latest),  # '': no latest
                    _num(self._seen_tat),
                    _num(self._seen_deadline),
                    self._member,
                    str(_STATE_TTL),
                    "" if given is None else _num(given[0]),
                    "" if given is None else _num(given[1]),
                    str(self._seen_number),
                    "" if given is None else str(given[2]),
                    "1" if self._resync else "0",
                ),
                _items(_finite, _whole, _whole, _whole),  # slot, processes seen, number, kept
            )
            self.peers = max(1, peers)
            self._seen_number = max(self._seen_number, number)
            self._resync = False
            if kept:
                self._seen_tat = max(self._seen_tat, slot + spacing)
            return Reservation(slot, number, kept=bool(kept))
        except _Unavailable:
            # Alone now: the same GCRA step on what this process knows, at a share of the
            # rate such that the processes last seen together stay within the limit (a
            # 429 still holds it; the shared budget is away until Redis answers again).
            slot = max(now, self._seen_tat, self._seen_deadline, not_before)
            spacing *= self.peers
            if latest is not None and slot > latest:
                return Reservation(slot, 0, kept=False)
            self._seen_tat = max(self._seen_tat, slot + spacing)
            self._resync = True
            return Reservation(slot, 0)

    async def give_back(self, slot: float, tat: float, number: int) -> None:
        self._roll_back_seen(slot, tat, number)
        if number <= 0:
            return  # reserved while Redis was away: only this process knew of it
        # Best effort, even when configured to fail: the caller is already on its way
        # out (cancelled, refused); a slot lost costs one interval, no more.
        with contextlib.suppress(_Unavailable, CoordinationError):
            stored = await self._connection.script(
                _GIVE_BACK,
                self._hash,
                (_num(slot), _num(tat), str(number), str(_STATE_TTL)),
                _finite,  # tat now
            )
            if not self._resync:
                # What this process saw may have been rolled back (not just its own).
                self._seen_tat = min(self._seen_tat, stored) if stored else self._seen_tat

    def _roll_back_seen(self, slot: float, tat: float, number: int) -> None:
        """What this process saw was its own reservation (``slot``, ``tat``): back to its
        slot (while Redis was away, reservations were spaced ``peers`` times wider)."""
        spacing = (tat - slot) * (1 if number > 0 else self.peers)
        if abs(self._seen_tat - (slot + spacing)) < 1e-5:
            self._seen_tat = slot

    async def report(
        self,
        *,
        number: int,
        remaining: int,
        limit: int | None,
        sent: float,
        end: float,
        answered: float | None = None,
    ) -> None:
        if number <= 0:
            return  # reserved while Redis was away: its number means nothing there
        remaining = max(0, min(remaining, _MAX_BUDGET))
        # Best effort, even when configured to fail: the answer is here already (a POST's
        # too); the next reservation fails if Redis is still away.
        with contextlib.suppress(_Unavailable, CoordinationError):
            await self._connection.script(
                _REPORT,
                self._hash,
                (
                    str(number),
                    str(remaining),
                    "" if limit is None else str(limit),  # '': not announced
                    _num(sent),
                    _num(end),
                    str(_STATE_TTL),
                    "" if answered is None else _num(answered),  # '': not known
                ),
                _whole,  # 1: merged, 0: an earlier window's, ignored
            )

    @property
    def shares_budget(self) -> bool:
        return not self._connection.outage  # while Redis is away, each gate its own count

    async def holds(self, *, number: int, now: float) -> tuple[float, float]:
        fields = ("deadline", "report_number", "report_remaining", "report_end")
        try:
            deadline, reported, remaining, end = await self._connection.call(
                lambda r: r.hmget(self._hash, fields), _items(*[_finite_or_none] * len(fields))
            )
        except _Unavailable:
            return self._seen_deadline, 0.0
        if deadline is not None:
            self._seen_deadline = max(self._seen_deadline, deadline)
        window = 0.0
        if number > 0 and reported is not None and remaining is not None and end is not None:
            report = BudgetReport(
                number=int(reported),
                remaining=int(remaining),
                end=end,
                opened=0.0,  # (not read by window_hold)
            )
            window = window_hold(report, number=number, at=now)
        return self._seen_deadline, window

    async def extend_deadline(self, until: float) -> float:
        self._seen_deadline = max(self._seen_deadline, until)
        try:
            deadline = await self._connection.script(
                _EXTEND_DEADLINE,
                self._hash,
                (_num(self._seen_deadline), str(_STATE_TTL)),
                _finite,
            )
            self._seen_deadline = max(self._seen_deadline, deadline)
        except _Unavailable:
            pass
        return self._seen_deadline


# -- the token store ------------------------------------------------------------------------


_DERIVING = threading.Lock()


def _derive_key(password: bytes, salt: bytes) -> bytes:
    with _DERIVING:  # concurrent callers wait for the first one's result
        return _derive_key_once(password, salt)


@functools.lru_cache(maxsize=8)
def _derive_key_once(password: bytes, salt: bytes) -> bytes:
    # scrypt: a leaked Redis dump gives no cheap way to guess the password.
    return hashlib.scrypt(password, salt=salt, n=2**14, r=8, p=1, dklen=32)


class _Sealer:
    """AES-GCM with a key derived from the password (scrypt): only processes that know
    the password can read or forge the shared token; Redis holds ciphertext only."""

    def __init__(self, password: str, salt: str) -> None:
        self._password = password.encode()
        self._salt = ("eattest token v1 " + salt).encode()
        self._aead: Any = None

    async def _cipher(self) -> Any:
        if self._aead is None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            # ~50 ms once per process, off the event loop.
            key = await anyio.to_thread.run_sync(
                lambda: hashlib.scrypt(self._password, salt=self._salt, n=2**14, r=8, p=1, dklen=32)
            )
            self._aead = AESGCM(key)
        return self._aead

    async def seal(self, plain: bytes, context: bytes) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + bytes((await self._cipher()).encrypt(nonce, plain, context))

    async def open(self, sealed: bytes, context: bytes) -> bytes | None:
        from cryptography.exceptions import InvalidTag

        if len(sealed) < 13:
            return None
        try:
            return bytes((await self._cipher()).decrypt(sealed[:12], sealed[12:], context))
        except InvalidTag:
            return None  # another password (changed?) or tampered: as if absent


class RedisTokenStore:
    """The account's token in Redis, sealed, and a lock so that one process grants it.

    ``lock()`` takes a Redis lock that expires after ``lock_ttl`` seconds (a process that
    dies holding it cannot block the others longer) and waits for it at most ``lock_wait``
    seconds, then goes on without it (at worst one extra grant, never a hang). While
    Redis is unavailable, ``load`` finds nothing, ``save`` keeps nothing and ``lock`` is
    immediate: the process renews its own token, as without a coordinator.
    """

    def __init__(
        self,
        connection: _Connection,
        key: str,
        *,
        password: str,
        lock_ttl: float,
        lock_wait: float,
    ) -> None:
        self._connection = connection
        self._key = f"eattest:{{{key}}}:token"
        self._lock_key = f"eattest:{{{key}}}:token-lock"
        self._sealer = _Sealer(password, key)
        self._lock_ttl = lock_ttl
        self._lock_wait = lock_wait

    def __repr__(self) -> str:
        return f"<RedisTokenStore {self._key}>"

    async def load(self) -> TokenRecord | None:
        """The shared token, or None (none yet, unreadable, or Redis unavailable)."""
        try:
            sealed = await self._connection.call(lambda r: r.get(self._key), _blob_or_none)
        except _Unavailable:
            return None
        if sealed is None:
            return None
        plain = await self._sealer.open(sealed, self._key.encode())
        if plain is None:
            return None
        try:
            data = orjson.loads(plain)
            return TokenRecord(
                access=str(data["access"]),
                refresh=None if data["refresh"] is None else str(data["refresh"]),
                expires_at=float(data["expires_at"]),
                refresh_expires_at=(
                    None
                    if data["refresh_expires_at"] is None
                    else float(data["refresh_expires_at"])
                ),
                lifetime=float(data["lifetime"]),
                issued_at=float(data["issued_at"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None  # written by another version: as if absent

    async def save(self, record: TokenRecord) -> None:
        """Share ``record`` (sealed) until it can no longer be used or refreshed."""
        plain = orjson.dumps(
            {
                "access": record.access,
                "refresh": record.refresh,
                "expires_at": record.expires_at,
                "refresh_expires_at": record.refresh_expires_at,
                "lifetime": record.lifetime,
                "issued_at": record.issued_at,
            }
        )
        sealed = await self._sealer.seal(plain, self._key.encode())
        usable_until = max(record.expires_at, record.refresh_expires_at or 0.0)
        ttl_ms = max(1000, int((usable_until - time.time()) * 1000))
        with contextlib.suppress(_Unavailable):
            await self._connection.call(lambda r: r.set(self._key, sealed, px=ttl_ms), _set_or_not)

    @contextlib.asynccontextmanager
    async def lock(self) -> AsyncIterator[None]:
        owner = secrets.token_hex(16)
        held = False
        bound = time.monotonic() + self._lock_wait
        pause = 0.01
        try:
            while True:
                try:
                    held = await self._connection.call(
                        lambda r: r.set(
                            self._lock_key, owner, nx=True, px=int(self._lock_ttl * 1000)
                        ),
                        _set_or_not,
                    )
                except _Unavailable:
                    break  # no Redis: the in-process single flight is all there is
                if held:
                    break
                if time.monotonic() >= bound:
                    logger.warning(
                        "the shared token lock was not released within %.0f s; going on without",
                        self._lock_wait,
                    )
                    break
                # Another process is granting; its token will be in Redis when it releases.
                await anyio.sleep(pause)
                pause = min(0.05, pause * 2)
            yield
        finally:
            if held:
                # Whatever happens, the lock expires by itself: never fail on releasing it.
                with (
                    anyio.CancelScope(shield=True),
                    contextlib.suppress(_Unavailable, CoordinationError),
                ):
                    await self._connection.script(_UNLOCK, self._lock_key, (owner,), _whole)


# -- coordinators ---------------------------------------------------------------------------


class Coordinator(Protocol):
    """What a client shares with other processes of the same account (see the module doc)."""

    def gate_store(self, key: str) -> GateStore | None:
        """The rate gate's store for the account ``key`` (see :func:`coordination_key`);
        None: the gate's own, in this process."""
        ...

    def token_store(self, key: str, *, password: str) -> TokenStore | None:
        """The token store for the account ``key``; None: the token stays in this process."""
        ...

    async def aclose(self) -> None:
        """Release connections (the coordinator may be used again: it reconnects)."""
        ...


class LocalCoordinator:
    """Nothing shared: each client has its own token and gate (the default)."""

    def __repr__(self) -> str:
        return "LocalCoordinator()"

    def gate_store(self, key: str) -> GateStore | None:
        """None: the rate gate keeps its state in this process."""
        return None

    def token_store(self, key: str, *, password: str) -> TokenStore | None:
        """None: the token manager keeps its token to itself."""
        return None

    async def aclose(self) -> None:
        """Nothing to release."""


class RedisCoordinator:
    """Share the token and the rate gate with every process using the same Redis.

    ::

        coordinator = ea.RedisCoordinator("redis://127.0.0.1:6379/0")
        async with ea.Client(env, username=..., password=..., coordinator=coordinator):
            ...

    ``timeout`` bounds each Redis call (seconds); ``on_unavailable`` says what happens
    when Redis cannot answer: ``"local"`` (a :class:`CoordinationWarning`, then
    in-process state at a conservative rate, Redis retried every ``retry_every`` s) or
    ``"fail"`` (:class:`CoordinationError`). ``lock_ttl`` is how long the token lock may be
    held by a process that died; ``lock_wait`` how long others wait for it at most.
    Needs ``pip install 'eattest-async[redis]'``.
    """

    def __init__(
        self,
        url: str,
        *,
        on_unavailable: Literal["local", "fail"] = "local",
        timeout: float = 0.5,
        retry_every: float = 1.0,
        lock_ttl: float = 30.0,
        lock_wait: float = 40.0,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise InvalidInputError("url", "expected redis://, rediss:// or unix:// URL")
        if on_unavailable not in ("local", "fail"):
            raise InvalidInputError("on_unavailable", 'expected "local" or "fail"')
        for name, value in (
            ("timeout", timeout),
            ("retry_every", retry_every),
            ("lock_ttl", lock_ttl),
            ("lock_wait", lock_wait),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise InvalidInputError(name, "must be a number of seconds > 0")
        try:
            import redis  # noqa: F401
        except ImportError as exc:
            raise InvalidInputError(
                "coordinator", "RedisCoordinator needs: pip install 'eattest-async[redis]'"
            ) from exc
        try:
            protocol = _redis_protocol(url)
        except ValueError:
            # Refused now, not at first use (a port past 65535, a query value redis-py
            # cannot read). Its own words may quote the URL, password included: not kept.
            raise InvalidInputError(
                "url", "not a Redis URL (a port from 0 to 65535? query values?)"
            ) from None
        if protocol not in (2, 3):
            raise InvalidInputError("url", "protocol must be 2 or 3")
        self._connection = _Connection(
            url, timeout=timeout, retry_every=retry_every, on_unavailable=on_unavailable
        )
        self._lock_ttl = lock_ttl
        self._lock_wait = lock_wait

    def __repr__(self) -> str:
        return f"RedisCoordinator({self._connection._redacted_url()!r})"

    @property
    def failures(self) -> int:
        """Redis calls that failed or were skipped during outages (fallbacks taken)."""
        return self._connection.failures

    def gate_store(self, key: str) -> RedisGateStore:
        """The gate store shared by every process of the account ``key``."""
        return RedisGateStore(self._connection, key)

    def token_store(self, key: str, *, password: str) -> RedisTokenStore:
        """The token store shared by every process of the account ``key``."""
        return RedisTokenStore(
            self._connection,
            key,
            password=password,
            lock_ttl=self._lock_ttl,
            lock_wait=self._lock_wait,
        )

    async def aclose(self) -> None:
        """Close the connections to Redis (reopened on next use)."""
        await self._connection.aclose()


REDIS_URL_VARIABLE = "EATTEST_REDIS_URL"


def coordinator_from_env(environ: Mapping[str, str] | None = None) -> RedisCoordinator | None:
    """A :class:`RedisCoordinator` on ``$EATTEST_REDIS_URL`` when it is set (the CLI and
    the FastAPI helper use this), else None: each process alone."""
    url = (os.environ if environ is None else environ).get(REDIS_URL_VARIABLE, "").strip()
    return RedisCoordinator(url) if url else None
