"""The pure scan plan, driven by fabricated answers: no network, no clock, answers in any order."""

from __future__ import annotations

import random
import sys
import tracemalloc
from collections.abc import Callable, Hashable
from typing import Any

import pytest

import eattest_async as ea
from eattest_async._scanplan import IdSet, PageAnswer, PageRequest, ScanPlan, Spans

Answer = tuple[Any, dict[str, Any]]  # (content, envelope fields: page, size, total)


class Listing:
    """A well-behaved server over ``items`` ids; tests override what it gets wrong."""

    def __init__(self, count: int, *, cap: int | None = None, say_size: bool = True) -> None:
        self.items = list(range(1000, 1000 + count))
        self.cap = cap
        self.say_size = say_size
        self.calls = 0

    def total(self) -> int | None:
        return len(self.items)

    def __call__(self, page: int, size: int) -> Answer:
        self.calls += 1
        size = min(size, self.cap or size)
        content = [{"id": i} for i in self.items[page * size : (page + 1) * size]]
        fields: dict[str, Any] = {"page": page, "total": self.total()}
        if self.say_size:
            fields["size"] = size
        return content, fields


def run(
    server: Callable[[int, int], Answer],
    *,
    page_size: int = 100,
    concurrency: int = 4,
    seed: int = 0,
    resume: ea.Checkpoint | None = None,
    stop_after: int | None = None,
) -> tuple[ScanPlan, list[int]]:
    """Drive a plan to its end like the scan does, answering in a random order."""
    plan = ScanPlan(
        operation="op", filters=(), page_size=page_size, lookahead=concurrency, resume_from=resume
    )
    rng = random.Random(seed)
    delivered: list[int] = []
    in_flight: list[PageRequest] = []
    for _ in range(100_000):
        in_flight += plan.issue(concurrency - len(in_flight))
        if not in_flight:
            if plan.done():
                return plan, delivered
            continue
        request = in_flight.pop(rng.randrange(len(in_flight)))
        content, fields = server(request.page, request.size)
        is_list = isinstance(content, list)
        keys = [item["id"] for item in content] if is_list else []
        answer = PageAnswer(
            content_type="list" if is_list else type(content).__name__, count=len(keys), **fields
        )
        received = plan.receive(request, answer, keys)
        if received.error is not None:
            raise RuntimeError(received.error)
        in_flight = [r for r in in_flight if r not in received.obsolete]
        delivered += [content[i]["id"] for i in received.fresh]
        plan.handed_over(request, len(received.fresh))
        if stop_after is not None and len(delivered) >= stop_after:
            return plan, delivered
    raise AssertionError("the plan never ended")


def once(delivered: list[int], expected: list[int]) -> bool:
    return len(delivered) == len(set(delivered)) and sorted(delivered) == sorted(expected)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(("count", "size"), [(0, 10), (1, 10), (1000, 100), (1001, 100), (57, 7)])
def test_an_honest_listing_is_read_once_in_any_order(seed: int, count: int, size: int) -> None:
    server = Listing(count)
    plan, delivered = run(server, page_size=size, concurrency=5, seed=seed)
    assert once(delivered, server.items)
    assert plan.complete()
    pages = max(1, -(-count // size))
    # Before the first answer, 5 pages go out together: those past the end are cancelled.
    assert plan.pages_fetched == pages or (pages < 5 and plan.pages_fetched <= 5)
    assert plan.duplicates == 0


@pytest.mark.parametrize("say_size", [True, False])
def test_a_server_capping_the_page_size_is_re_planned_not_truncated(say_size: bool) -> None:
    server = Listing(1000, cap=30, say_size=say_size)
    plan, delivered = run(server, page_size=100, concurrency=4, seed=3)
    assert once(delivered, server.items)
    assert plan.size == 30
    assert plan.complete(), plan.problems(finished=True)


def test_content_that_is_not_a_list_is_asked_again_then_an_error() -> None:
    server = Listing(500)
    bad = {"left": 2}

    def flaky(page: int, size: int) -> Answer:
        content, fields = server(page, size)
        if page == 3 and bad["left"]:
            bad["left"] -= 1
            return None, fields
        return content, fields

    plan, delivered = run(flaky)
    assert once(delivered, server.items)
    assert plan.bad_pages == 2
    assert plan.complete()

    def broken(page: int, size: int) -> Answer:
        content, fields = server(page, size)
        return ({"content": content} if page == 2 else content), fields

    with pytest.raises(RuntimeError, match="page 2: content is dict, not a list"):
        run(broken)


def test_a_short_page_in_the_middle_is_asked_again_then_reported_missing() -> None:
    server = Listing(1000)

    def short(page: int, size: int) -> Answer:
        content, fields = server(page, size)
        return (content[:60] if page == 4 else content), fields

    plan, delivered = run(short)
    assert len(delivered) == len(set(delivered)) == 960
    assert not plan.complete()
    assert plan.missing == 40
    assert any("short page" in p for p in plan.problems(finished=True))
    assert plan.pages_fetched <= 12


def _empty_page_shape(shape: str) -> tuple[Listing, Callable[[int, int], Answer]]:
    """30 items, pages of 10, no size announced (or 0), and a page that comes back empty:
    ``overcount`` announces 31 (the page for the 31st is empty), ``nosize`` and ``size0``
    answer page 1 empty."""
    server = Listing(30, say_size=False)

    def answer(page: int, size: int) -> Answer:
        content, fields = server(page, size)
        if shape == "overcount":
            fields["total"] = 31
        elif page == 1:
            content = []
        if shape == "size0":
            fields["size"] = len(content)
        return content, fields

    return server, answer


@pytest.mark.parametrize("concurrency", [1, 4])
@pytest.mark.parametrize("shape", ["overcount", "nosize", "size0"])
def test_an_empty_page_without_a_size_is_the_end_not_a_page_size_of_zero(
    shape: str, concurrency: int
) -> None:
    # An empty page says where the listing ends (or a hiccup); taken as the server's
    # page size it became 0, and the next division by it escaped as ZeroDivisionError.
    server, answer = _empty_page_shape(shape)
    plan, delivered = run(answer, page_size=10, concurrency=concurrency)
    assert len(delivered) == len(set(delivered))
    assert set(delivered) <= set(server.items)
    assert plan.size == 10
    assert not plan.complete()
    problems = plan.problems(finished=True)
    assert any("empty page before the announced end" in p for p in problems), problems
    assert plan.missing == (31 if shape == "overcount" else 30) - len(delivered)
    if shape == "overcount":
        assert sorted(delivered) == server.items  # all that exists, once
    assert plan.pages_total == (4 if shape == "overcount" else 3)


class Hostile:
    """A fixed listing whose every answer may lie: no size, a size of 0 or huge, empty or
    short content, content that is not a list, another page, a total off, absent or not a
    count. Each answer draws from ``rng``: the same seed, the same lies."""

    LIES = ("nosize", "size0", "sizehuge", "empty", "short", "null", "page", "total", "nototal")

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.items = list(range(1000, 1000 + rng.choice([0, 1, 9, 10, 11, 31, 100])))
        self.lies = rng.sample(self.LIES, rng.randint(1, 4))

    def __call__(self, page: int, size: int) -> Answer:
        rng, lie = self.rng, self.rng.choice(self.lies) if self.rng.random() < 0.4 else ""
        content: Any = [{"id": i} for i in self.items[page * size : (page + 1) * size]]
        total: object = len(self.items)
        fields: dict[str, Any] = {"page": page, "size": None if rng.random() < 0.5 else size}
        if lie == "nosize":
            fields["size"] = None
        elif lie == "size0":
            fields["size"] = 0
        elif lie == "sizehuge":
            fields["size"] = 10**9
        elif lie == "empty":
            content = []
        elif lie == "short":
            content = content[: len(content) // 2]
        elif lie == "null":
            content = None
        elif lie == "page":
            fields["page"] = page + 1
        elif lie == "total":
            total = len(self.items) + rng.choice([-5, -1, 1, 5])
        elif lie == "nototal":
            total = rng.choice([None, -1, True, "31"])
        return content, {**fields, "total": total}


def test_no_lie_of_a_server_escapes_the_plan_as_an_exception() -> None:
    # Fixed seeds, fast: the plan ends every time, with its verdict (an error of a page
    # or a report), never with an exception of its own.
    with pytest.raises(ea.InvalidInputError, match="page_size"):
        ScanPlan(operation="op", filters=(), page_size=0)
    for seed in range(400):
        rng = random.Random(seed)
        server = Hostile(rng)
        page_size, concurrency = rng.choice([1, 3, 10]), rng.choice([1, 2, 4])
        plan = ScanPlan(operation="op", filters=(), page_size=page_size, lookahead=concurrency)
        delivered: list[int] = []
        in_flight: list[PageRequest] = []
        for _ in range(5000):
            in_flight += plan.issue(concurrency - len(in_flight))
            if not in_flight:
                if plan.done():
                    break
                continue
            request = in_flight.pop(rng.randrange(len(in_flight)))
            content, fields = server(request.page, request.size)
            keys = [item["id"] for item in content] if isinstance(content, list) else []
            kind = "list" if isinstance(content, list) else type(content).__name__
            received = plan.receive(
                request, PageAnswer(content_type=kind, count=len(keys), **fields), keys
            )
            if received.error is not None:
                break  # the scan's typed end: an UnexpectedResponseError with a checkpoint
            in_flight = [r for r in in_flight if r not in received.obsolete]
            delivered += [keys[i] for i in received.fresh]
            plan.handed_over(request, len(received.fresh))
        else:
            raise AssertionError(f"seed {seed}: the plan never ended ({server.lies})")
        assert len(delivered) == len(set(delivered)), (seed, server.lies)
        assert set(delivered) <= set(server.items), (seed, server.lies)
        assert plan.size >= 1
        plan.problems(finished=True)
        plan.checkpoint()
        if plan.complete():
            assert sorted(delivered) == server.items, (seed, server.lies)


@pytest.mark.parametrize("echo", ["asked", "page 0", "none"])
def test_a_server_ignoring_page_ends_with_an_honest_report(echo: str) -> None:
    server = Listing(1000)

    def stuck(page: int, size: int) -> Answer:
        content, fields = server(0, size)
        fields["page"] = {"asked": page, "page 0": 0, "none": None}[echo]
        return content, fields

    plan, delivered = run(stuck)
    assert sorted(delivered) == server.items[:100]
    assert plan.duplicates >= 900
    assert plan.missing == 900
    assert not plan.complete()
    assert plan.pages_fetched <= 2 * 10


def test_a_total_that_keeps_growing_hits_the_bound() -> None:
    server = Listing(1000)

    def growing(page: int, size: int) -> Answer:
        server.items += range(server.items[-1] + 1, server.items[-1] + 101)
        return server(page, size)

    plan, delivered = run(growing, concurrency=8)
    assert len(delivered) == len(set(delivered))
    assert plan.exhausted
    assert plan.pages_fetched <= 4 * (10 + 2 * 8 + 8) + 8
    assert any("bound" in p for p in plan.problems(finished=True))


def test_without_a_total_a_repeated_last_page_ends_the_walk() -> None:
    server = Listing(1000)

    def repeating(page: int, size: int) -> Answer:
        content, _fields = server(min(page, 9), size)
        return content, {"page": page}

    plan, delivered = run(repeating, concurrency=4)
    assert once(delivered, server.items)
    assert not plan.complete()
    assert any("repeated" in p for p in plan.problems(finished=True))
    assert plan.pages_fetched <= 10 + 2 * 4  # 4 in flight on either side of the repeat


def test_without_a_total_a_short_page_is_the_end() -> None:
    server = Listing(250)

    def quiet(page: int, size: int) -> Answer:
        content, _fields = server(page, size)
        return content, {"page": page, "size": size}

    plan, delivered = run(quiet, concurrency=1)
    assert once(delivered, server.items)
    assert plan.complete()
    assert plan.pages_fetched == 3


def test_an_absurd_total_allocates_nothing_in_proportion() -> None:
    server = Listing(1000)

    def liar(page: int, size: int) -> Answer:
        content, fields = server(page, size)
        return content, {**fields, "total": 10**18}

    tracemalloc.start()
    try:
        plan, delivered = run(liar, concurrency=16)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert once(delivered, server.items)
    assert peak < 2_000_000
    assert not plan.complete()
    assert any("empty page" in p for p in plan.problems(finished=True))
    assert plan.pages_fetched <= 10 + 2 * 16 + 2


def test_an_absurd_checkpoint_is_refused_or_plans_lazily() -> None:
    base = {"version": 2, "operation": "op", "filters": [], "page_size": 100}
    for bad in (
        {**base, "total_elements": True, "done": []},
        {**base, "total_elements": 10, "done": [[0, 20]]},
        {**base, "total_elements": None, "done": [[5, 9], [0, 3]]},
        {**base, "total_elements": None, "done": [[0, "3"]]},
        {**base, "version": 9, "total_elements": None, "done": []},
        {**base, "total_elements": 10**30, "done": []},
        {"operation": "op"},
        ["not", "an", "object"],
    ):
        with pytest.raises(ea.InvalidInputError):
            ea.Checkpoint.from_json(bad)
    huge = ea.Checkpoint.from_json({**base, "total_elements": 10**18, "done": [[0, 10**17]]})
    server = Listing(1000)

    def liar(page: int, size: int) -> Answer:
        content, fields = server(page, size)
        return content, {**fields, "total": 10**18}

    tracemalloc.start()
    try:
        honest, delivered = run(server, resume=huge)
        lying, _ = run(liar, resume=huge)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000
    # The server's own total (1000) differs: everything is read again under it, and
    # delivered, since the checkpoint's positions say nothing any more; said, as the
    # items delivered before the resume may be among them.
    assert once(delivered, server.items)
    assert not honest.complete()
    assert honest.resumed_again == 1000
    assert any("changed since the checkpoint" in p for p in honest.problems(finished=True))
    assert not lying.complete()
    assert lying.pages_fetched <= 2 * 4


def test_items_shifted_by_an_insertion_are_read_again_and_not_repeated() -> None:
    server = Listing(1000)
    answered = {"n": 0}

    def drifting(page: int, size: int) -> Answer:
        answered["n"] += 1
        if answered["n"] == 4:  # inserted at the front: every item shifts by 5
            server.items[0:0] = range(1, 6)
        return server(page, size)

    plan, delivered = run(drifting, concurrency=4, seed=1)
    assert once(delivered, server.items)
    assert plan.drift_events == 1
    assert plan.repaired_pages > 0
    assert plan.complete(), plan.problems(finished=True)


def test_a_checkpoint_resumes_without_asking_for_what_was_delivered() -> None:
    server = Listing(1000)
    first_plan, first = run(server, concurrency=1, stop_after=300)
    checkpoint = ea.Checkpoint.from_json(first_plan.checkpoint().to_json())
    assert checkpoint.done == ((0, 300),)
    server.calls = 0
    plan, rest = run(server, resume=checkpoint, seed=2)
    assert once(first + rest, server.items)
    assert server.calls == 7
    assert plan.complete()


def test_a_version_1_checkpoint_is_read() -> None:
    old = {
        "version": 1,
        "operation": "op",
        "filters": [["monitored", "true"]],
        "page_size": 100,
        "total_elements": 250,
        "done_pages": [0, 2, 1],
    }
    assert ea.Checkpoint.from_json(old).done == ((0, 250),)


def checkpoint(total: int | None, done: list[list[int]]) -> ea.Checkpoint:
    return ea.Checkpoint.from_json(
        {"version": 2, "operation": "op", "filters": [], "page_size": 100}
        | {"total_elements": total, "done": done}
    )


class Untold(Listing):
    """A listing that never says its total."""

    def total(self) -> int | None:
        return None


@pytest.mark.parametrize("told", [True, False])
def test_a_resume_under_a_capped_page_size_delivers_each_item_once(told: bool) -> None:
    # Asked 100, the server sends 50: the first run stops after 3 of its pages, half-way
    # through a page of 100, where the resumed plan starts asking (page 1 of 100 is
    # positions 50-99 at the server's size, page 2 100-149: all delivered already).
    server = Listing(400, cap=50) if told else Untold(400, cap=50)
    first_plan, first = run(server, concurrency=1, stop_after=150)
    saved = ea.Checkpoint.from_json(first_plan.checkpoint().to_json())
    assert saved.done == ((0, 150),)
    assert saved.total_elements == (400 if told else None)
    # Without a total, pages of 100 sent ahead before the cap is known come back as
    # repeats, taken for a server ignoring ``page=`` (a fresh scan too): one at a time.
    plan, rest = run(server, resume=saved, seed=1, concurrency=4 if told else 1)
    assert once(first + rest, server.items)
    assert plan.complete(), plan.problems(finished=True)
    assert plan.items == len(rest) == 250
    # Positions 50-99 (page 1 of 100), and 100-149 when page 2 went out before the cap was
    # known: delivered by the first run, dropped.
    assert plan.resumed_dropped == (100 if told else 50)
    # The others: pages of 100 asked before the cap was known, answered after another.
    assert plan.duplicates - plan.resumed_dropped < 100 * 4


@pytest.mark.parametrize("done", [[[0, 50]], [[0, 1], [2, 3], [4, 5]], [[10, 150], [160, 161]]])
@pytest.mark.parametrize("kind", ["same total", "no total then one", "never a total"])
def test_a_resume_drops_the_items_of_a_partial_page_the_checkpoint_has(
    done: list[list[int]], kind: str
) -> None:
    server = Untold(300) if kind == "never a total" else Listing(300)
    saved = checkpoint(300 if kind == "same total" else None, done)
    # Never a total, one at a time: with pages ahead, an empty page past the end answered
    # before the last short one sets the end too far (a fresh scan too; not this test's).
    plan, rest = run(server, resume=saved, seed=2, concurrency=1 if kind == "never a total" else 4)
    counted = {p for a, b in done for p in range(a, b)}
    assert once(rest, [item for p, item in enumerate(server.items) if p not in counted])
    assert plan.complete(), plan.problems(finished=True)
    # No page lies wholly in the checkpoint: each is read once, none again as "stale".
    assert plan.resumed_dropped == plan.duplicates == len(counted)
    assert plan.repaired_pages == 0
    assert server.calls <= 4  # pages 0-2, and one past the end before it is known


def test_a_listing_changed_since_the_checkpoint_is_delivered_again_and_said() -> None:
    server = Listing(300)
    saved = checkpoint(300, [[0, 150]])
    server.items[0:0] = range(1, 6)  # inserted since: the checkpoint's positions moved
    plan, rest = run(server, resume=saved)
    # Its positions tell nothing now: read again and delivered rather than lost.
    assert once(rest, server.items)
    assert plan.resume_moved == (300, 305)
    assert plan.resumed_dropped == 0
    assert plan.resumed_again == 150
    assert not plan.complete()
    assert any("changed since the checkpoint" in p for p in plan.problems(finished=True))


def test_a_checkpoint_of_100k_ranges_loads_and_resumes() -> None:
    # The most from_json accepts. Merging each range into a sorted copy of all the others
    # took ~n^2 log n steps (47 s for 10,000 ranges, hours for these); here each of the
    # 2,000 pages costs a bisection.
    n = 100_000
    server = Listing(2 * n + 50)
    plan, rest = run(server, resume=checkpoint(None, [[2 * i, 2 * i + 1] for i in range(n)]))
    assert once(rest, server.items[1 : 2 * n : 2] + server.items[2 * n :])
    assert plan.complete(), plan.problems(finished=True)
    assert plan.resumed_dropped == n
    assert server.calls <= 2 * n // 100 + 1 + 4


class Position(int):
    """A position that counts the comparisons made with it."""

    compared = 0

    def __lt__(self, other: int) -> bool:
        Position.compared += 1
        return int(self) < other

    def __le__(self, other: int) -> bool:
        Position.compared += 1
        return int(self) <= other

    def __gt__(self, other: int) -> bool:
        Position.compared += 1
        return int(self) > other

    def __ge__(self, other: int) -> bool:
        Position.compared += 1
        return int(self) >= other


def test_spans_take_n_log_n_comparisons_to_load_or_build() -> None:
    n = 2000
    ranges = [(Position(2 * i), Position(2 * i + 1)) for i in range(n)]
    bound = 4 * n * n.bit_length()  # a copy, sort and merge per range took ~n^2 log n / 2
    Position.compared = 0
    ScanPlan(
        operation="op",
        filters=(),
        page_size=100,
        resume_from=ea.Checkpoint(
            operation="op", filters=(), page_size=100, total_elements=None, done=tuple(ranges)
        ),
    )
    assert Position.compared <= bound
    random.Random(0).shuffle(ranges)
    spans = Spans()
    Position.compared = 0
    for a, b in ranges:
        spans.add(a, b, a % 3)
    assert Position.compared <= bound
    assert len(spans.items) == n


def test_spans_agree_with_a_map_of_positions() -> None:
    rng = random.Random(1)
    for _ in range(500):
        spans, tags = Spans(), dict[int, Any]()
        for _ in range(12):
            a, b, tag = rng.randrange(40), rng.randrange(40), rng.choice([None, 1, 2])
            if rng.random() < 0.8:
                spans.add(a, b, tag)
                tags.update(dict.fromkeys(range(a, b), tag))
            else:
                where = Spans.of([(rng.randrange(40), rng.randrange(40)) for _ in range(3)])
                spans.retag(tag, 3, where)
                inside = {p for x, y, _ in where.items for p in range(x, y)}
                tags.update({p: 3 for p, t in tags.items() if t == tag and p in inside})
            expected: list[tuple[int, int, Any]] = []
            for p in sorted(tags):
                if expected and expected[-1][1] == p and expected[-1][2] == tags[p]:
                    expected[-1] = (expected[-1][0], p + 1, tags[p])
                else:
                    expected.append((p, p + 1, tags[p]))
            assert spans.items == expected
            assert spans.length(1) == sum(1 for t in tags.values() if t == 1)
            x, y = sorted((rng.randrange(45), rng.randrange(45)))
            assert spans.overlap(x, y) == sum(1 for p in range(x, y) if p in tags)
            holes = [p for p in range(x, y) if p not in tags]
            assert [p for a, b in spans.gaps(x, y) for p in range(a, b or 0)] == holes


def test_the_id_set_is_compact_for_dense_ids_and_exact_for_any() -> None:
    ids = IdSet()
    for key in range(5_000_000, 5_200_000):
        ids.add(key)
    size = sum(sys.getsizeof(part) for part in (ids._blocks, ids._sparse, ids._counts))
    size += sum(sys.getsizeof(block) for block in ids._blocks.values())
    assert len(ids) == 200_000
    assert size < 50_000  # about a bit per id (a set of them takes ~12 MB)
    assert 5_100_000 in ids
    assert 4_999_999 not in ids
    assert not ids.add(5_123_456)
    rng = random.Random(7)
    sparse: set[Hashable] = {rng.randrange(2**40) for _ in range(5000)} | {-3, "a", (1, 2)}
    other = IdSet()
    for value in sparse:
        assert other.add(value)
    assert all(value in other for value in sparse)
    assert len(other) == len(sparse)
    other.discard(-3)
    assert -3 not in other
    assert len(other) == len(sparse) - 1


def test_the_id_set_adds_a_page_at_once_as_it_adds_one_at_a_time() -> None:
    rng = random.Random(11)
    for _ in range(30):
        # Dense ids (bitmap blocks, made on the way), sparse ones, repeats within a page,
        # and keys that are not integer ids.
        pages: list[list[Hashable]] = [
            [
                rng.choice(
                    [
                        rng.randrange(10_000, 10_300),
                        rng.randrange(2**40),
                        -rng.randrange(5),
                        f"k{rng.randrange(50)}",
                        rng.random() < 0.5,
                        None,
                    ]
                )
                for _ in range(rng.randrange(0, 120))
            ]
            for _ in range(6)
        ]
        one, batch = IdSet(), IdSet()
        for page in pages:
            assert batch.add_all(page) == [one.add(key) for key in page]
            assert len(batch) == len(one)
        for key in {key for page in pages for key in page}:
            assert (key in batch) == (key in one)


def test_filters_are_declared_once_for_list_scan_the_cli_and_the_simulator() -> None:
    from click.testing import CliRunner

    from eattest_async import cli
    from eattest_async._filters import (
        DOSSIER_FILTERS,
        THIRDPARTY_FILTERS,
        DossierFilters,
        ThirdpartyFilters,
    )
    from eattest_async.simulator._api import dossiers as simulated_dossiers
    from eattest_async.simulator._api import thirdparties as simulated_thirdparties

    assert set(DossierFilters.__annotations__) == set(DOSSIER_FILTERS)
    assert set(ThirdpartyFilters.__annotations__) == set(THIRDPARTY_FILTERS)
    assert {f.param for f in DOSSIER_FILTERS.values()} == simulated_dossiers._DOSSIER_FILTERS
    assert {f.param for f in THIRDPARTY_FILTERS.values()} == (
        simulated_thirdparties._THIRDPARTY_FILTERS
    )
    options = {p.name for p in cli.scan.params}
    declared = {**DOSSIER_FILTERS, **THIRDPARTY_FILTERS}
    assert {name for name, f in declared.items() if f.option} <= options
    result = CliRunner().invoke(cli.cli, ["scan", "thirdparties", "--reference", "X"])
    assert result.exit_code == 2
    assert "--reference does not filter thirdparties" in result.output


def test_when_enough_waits_for_the_consumer_only_the_page_it_waits_for_is_asked() -> None:
    server = Listing(2000)
    plan = ScanPlan(operation="op", filters=(), page_size=100, lookahead=8)
    first = plan.issue(8)
    for request in first:  # page 3 comes back null: its positions stay unread
        content, fields = server(request.page, request.size)
        keys = [item["id"] for item in content]
        kind = "null" if request.page == 3 else "list"
        plan.receive(request, PageAnswer(content_type=kind, count=len(keys), **fields), keys)
    assert plan.frontier() == 300
    again = plan.issue(8, below=plan.frontier() + 1)
    assert [r.page for r in again] == [3]
    assert plan.issue(8, below=plan.frontier() + 1) == []  # it is in flight now
    assert [r.page for r in plan.issue(2)] == [8, 9]


def test_one_concurrency_check_for_limits_and_scans() -> None:
    for bad in (0, 257, True, 2.0):
        with pytest.raises(ea.InvalidInputError, match="from 1 to 256"):
            ea.Limits(scan_concurrency=bad)  # type: ignore[arg-type]
    assert ea.Limits(scan_concurrency=256).scan_concurrency == 256


class Undercount(Listing):
    """A listing whose total says fewer items than its pages hold."""

    def total(self) -> int | None:
        return 5


@pytest.mark.parametrize("concurrency", [1, 4])
@pytest.mark.parametrize(("count", "size"), [(10, 100), (30, 10), (30, 7)])
def test_a_page_holding_more_than_the_total_says_is_read_on_and_reported(
    concurrency: int, count: int, size: int
) -> None:
    # Total 5, pages holding 30: the items past the total were once dropped silently,
    # and the scan said complete (a sync's watermark then skipped them for good).
    server = Undercount(count)
    plan, delivered = run(server, page_size=size, concurrency=concurrency)
    assert once(delivered, server.items)
    assert not plan.complete()
    problems = plan.problems(finished=True)
    assert any("more items than the total" in p for p in problems), problems
    assert plan.pages_fetched <= -(-count // size) + 2 * concurrency


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("concurrency", [1, 4])
def test_without_a_total_or_a_size_a_capped_resume_delivers_each_item_once(
    seed: int, concurrency: int
) -> None:
    # Asked 100, the server sends 50 and says neither its size nor a total. The resumed
    # plan's first page (page 1 of 100: positions 50-99 at the server's size) was taken
    # for the last one: complete, with 250 of the 400 items never delivered.
    server = Untold(400, cap=50, say_size=False)
    first_plan, first = run(server, concurrency=1, stop_after=150)
    saved = ea.Checkpoint.from_json(first_plan.checkpoint().to_json())
    assert saved.done == ((0, 150),)
    plan, rest = run(server, resume=saved, seed=seed, concurrency=concurrency)
    assert once(first + rest, server.items)
    assert plan.complete(), plan.problems(finished=True)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("count", "cap"), [(400, 50), (420, 50), (30, None), (150, None)])
def test_without_a_total_or_a_size_answers_in_any_order_end_where_the_listing_does(
    seed: int, count: int, cap: int | None
) -> None:
    # Pages sent ahead answered out of order: a short page of a size not known to be the
    # server's is not taken for the end, and an empty page of the size asked before the
    # cap was known does not set the end past it.
    server = Untold(count, cap=cap, say_size=False)
    plan, delivered = run(server, concurrency=4, seed=seed)
    assert once(delivered, server.items)
    assert plan.complete(), plan.problems(finished=True)
    assert server.calls <= -(-count // (cap or 100)) + 3 * 4
