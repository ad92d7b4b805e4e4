"""The decoder of compressed file bodies (pure, no network): whole streams in any slicing,
pieces bounded whatever the ratio, a stream cut short or followed by garbage told apart."""

from __future__ import annotations

import gzip
import random
import zlib

import pytest

from eattest_async._downloads import Inflater

DATA = random.Random(3).randbytes(40_000) + bytes(60_000)  # noise, then a long run

ENCODED = {
    "gzip": gzip.compress(DATA),
    "deflate": zlib.compress(DATA),
    "raw deflate": zlib.compress(DATA)[2:-4],
}


def decode(inflater: Inflater, body: bytes, step: int, size: int = 4096) -> bytes:
    pieces: list[bytes] = []
    for start in range(0, len(body), step):
        pieces += inflater.feed(body[start : start + step], size)
    pieces += inflater.finish(size)
    assert all(len(piece) <= size for piece in pieces)
    return b"".join(pieces)


@pytest.mark.parametrize("step", [1, 7, 1000, 10**6])
@pytest.mark.parametrize("encoding", list(ENCODED))
def test_a_whole_stream_decodes_in_any_slicing(encoding: str, step: int) -> None:
    inflater = Inflater(encoding.split()[-1])
    assert decode(inflater, ENCODED[encoding], step) == DATA
    assert inflater.complete


@pytest.mark.parametrize("encoding", list(ENCODED))
def test_a_stream_cut_anywhere_is_not_complete(encoding: str) -> None:
    body = ENCODED[encoding]
    for cut in (0, 1, 2, 10, len(body) // 2, len(body) - 1):
        inflater = Inflater(encoding.split()[-1])
        try:
            decode(inflater, body[:cut], 500)
        except zlib.error:
            continue  # a cut inside a header may already read as corrupt
        assert not inflater.complete, cut


@pytest.mark.parametrize("trailing", [b"", b"\n", b"\x00" * 8], ids=["none", "one", "eight"])
def test_gzip_members_follow_each_other_and_trailing_bytes_are_ignored(trailing: bytes) -> None:
    body = gzip.compress(b"first ") + gzip.compress(b"second") + trailing
    inflater = Inflater("gzip")
    assert decode(inflater, body, 3) == b"first second"
    assert inflater.complete


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", b"this is not gzip at all"),
        ("deflate", zlib.compress(b"x") + b"more"),
        ("gzip", gzip.compress(b"x")[:-8] + b"\xff" * 8),  # a wrong checksum
    ],
    ids=["not gzip", "after deflate's end", "bad crc"],
)
def test_a_corrupt_stream_is_a_zlib_error(encoding: str, body: bytes) -> None:
    with pytest.raises(zlib.error):
        decode(Inflater(encoding), body, 5)


def test_a_bomb_comes_out_in_bounded_pieces_one_at_a_time() -> None:
    bomb = gzip.compress(bytes(50 * 1024 * 1024))  # 50 MiB of zeros in ~50 KiB
    pieces = Inflater("gzip").feed(bomb, 65536)
    first = [next(pieces) for _ in range(3)]  # lazily: the rest is not decoded yet
    assert [len(piece) for piece in first] == [65536] * 3


@pytest.mark.parametrize("encoding", ["br", "zstd", "gzip, gzip", "compress"])
def test_an_encoding_we_do_not_decode_is_refused(encoding: str) -> None:
    with pytest.raises(ValueError, match=encoding.split(",")[0]):
        Inflater(encoding)


def test_identity_passes_through_in_bounded_pieces() -> None:
    inflater = Inflater("identity")
    assert decode(inflater, DATA, 30_000, size=8192) == DATA
    assert inflater.complete
