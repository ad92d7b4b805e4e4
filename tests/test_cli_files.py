"""Downloads never overwrite, never lose a file, and name files safely on any disk.

Library behaviour (``client.files.download``), shared by ``eattest download``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import eattest_async as ea
from eattest_async._downloads import numbered, publish, safe_filename
from eattest_async.simulator import Simulator

from .conftest import client_for

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("proposed", "expected"),
    [
        ("CON.tar.gz", "_CON.tar.gz"),  # the device name is the part before the FIRST dot
        ("con .pdf", "_con .pdf"),  # ... without its trailing spaces
        ("nul..txt", "_nul..txt"),
        ("COM1.report.pdf", "_COM1.report.pdf"),
        ("LPT\u00b9.txt", "_LPT\u00b9.txt"),
        ("conin$.log", "_conin$.log"),
        ("CONTRACT.pdf", "CONTRACT.pdf"),  # not a device: the whole first part counts
        ("report.pdf. . ", "report.pdf"),  # Windows drops trailing dots and spaces
        ("", "fallback.bin"),
    ],
)
def test_safe_filename_refuses_every_spelling_of_a_windows_device(
    proposed: str, expected: str
) -> None:
    assert safe_filename(proposed, "fallback.bin") == expected


def test_numbered_names_keep_the_extension_and_the_length_bound() -> None:
    assert numbered("report.pdf", 0) == "report.pdf"
    assert numbered("report.pdf", 1) == "report (1).pdf"
    assert numbered("archive.tar.gz", 2) == "archive (2).tar.gz"
    assert numbered("README", 3) == "README (3)"
    long = numbered("é" * 99 + ".pdf", 12)
    assert long.endswith(" (12).pdf")
    assert len(long.encode()) <= 200


def test_concurrent_publishers_of_one_name_never_replace_each_other(tmp_path: Path) -> None:
    """16 threads finish a download with the same wished name at once: 16 files, none lost."""
    (tmp_path / "report.pdf").write_bytes(b"the user's own file")
    temps = []
    for number in range(16):
        temp = tmp_path / f".eattest-{number}.part"
        temp.write_bytes(f"download {number}".encode())
        temps.append(temp)
    start = threading.Barrier(len(temps))
    published: list[Path] = []

    def finish(temp: Path) -> None:
        start.wait()
        published.append(publish(temp, tmp_path / "report.pdf"))

    threads = [threading.Thread(target=finish, args=(t,)) for t in temps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (tmp_path / "report.pdf").read_bytes() == b"the user's own file"
    assert len(set(published)) == 16
    contents = sorted(p.read_bytes() for p in published)
    assert contents == sorted(f"download {n}".encode() for n in range(16))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["report.pdf", *(f"report ({n}).pdf" for n in range(1, 17))]
    )


async def first_file(client: ea.Client) -> tuple[int, int, ea.FileInfo]:
    for dossier in await client.dossiers.list(page_size=20):
        for document in dossier.documents:
            if document.files:
                return dossier.dossier_id or 0, document.document_id or 0, document.files[0]
    raise AssertionError("no file in the first page")


@pytest.fixture
async def small_sim() -> AsyncIterator[Simulator]:
    async with Simulator(seed=7, dossiers=50) as simulator:
        yield simulator


async def test_dest_is_always_a_folder_even_when_missing(
    small_sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with client_for(small_sim) as client:
        dossier_id, document_id, info = await first_file(client)
        # The README's own example: the folder does not exist yet.
        path = await client.files.download(
            dossier_id, document_id, info.file_id or 0, dest="downloads/"
        )
        assert (tmp_path / "downloads").is_dir()
        assert path.parent.resolve() == (tmp_path / "downloads").resolve()
        # Without the slash too: "nested/files" is a folder, never a file named "files".
        path = await client.files.download(
            dossier_id, document_id, info.file_id or 0, dest=tmp_path / "nested" / "files"
        )
        assert path.parent == tmp_path / "nested" / "files"
        assert path.stat().st_size == info.file_size
        # A file where the folder should be: refused before any request.
        (tmp_path / "taken").write_text("mine")
        before = small_sim.stats.requests.get("download_file", 0)
        with pytest.raises(ea.InvalidInputError, match="dest"):
            await client.files.download(dossier_id, document_id, info.file_id or 0, dest="taken")
        assert small_sim.stats.requests.get("download_file", 0) == before
        assert (tmp_path / "taken").read_text() == "mine"


async def test_a_taken_name_gets_a_number_and_nothing_is_replaced_unless_asked(
    small_sim: Simulator, tmp_path: Path
) -> None:
    small_sim.faults.download_filename = "attestation.pdf"
    async with client_for(small_sim) as client:
        dossier_id, document_id, info = await first_file(client)
        size = info.file_size
        mine = tmp_path / "attestation.pdf"
        mine.write_bytes(b"the user's own attestation")
        folder = tmp_path / "attestation (1).pdf"  # a folder with the next name: kept too
        folder.mkdir()
        (folder / "inside.txt").write_text("kept")
        paths = [
            await client.files.download(dossier_id, document_id, info.file_id or 0, dest=tmp_path)
            for _ in range(2)
        ]
        assert [p.name for p in paths] == ["attestation (2).pdf", "attestation (3).pdf"]
        assert all(p.stat().st_size == size for p in paths)
        assert mine.read_bytes() == b"the user's own attestation"
        assert (folder / "inside.txt").read_text() == "kept"
        # Asked to: the user's file is replaced, atomically, by the download.
        replaced = await client.files.download(
            dossier_id, document_id, info.file_id or 0, dest=tmp_path, overwrite=True
        )
        assert replaced == mine
        assert mine.stat().st_size == size
        # A name the caller chooses is made safe and numbered in the same way.
        chosen = await client.files.download(
            dossier_id, document_id, info.file_id or 0, dest=tmp_path, filename="CON .pdf"
        )
        assert chosen.name == "_CON .pdf"
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(
        [
            "attestation.pdf",
            "attestation (1).pdf",
            "attestation (2).pdf",
            "attestation (3).pdf",
            "_CON .pdf",
        ]
    )
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".part")]


async def test_a_proposed_name_that_is_a_folder_does_not_lose_the_download(
    small_sim: Simulator, tmp_path: Path
) -> None:
    small_sim.faults.download_filename = "evidence"
    (tmp_path / "evidence").mkdir()
    async with client_for(small_sim) as client:
        dossier_id, document_id, info = await first_file(client)
        for overwrite in (False, True):  # not even overwrite replaces a folder
            path = await client.files.download(
                dossier_id, document_id, info.file_id or 0, dest=tmp_path, overwrite=overwrite
            )
            assert path.is_file()
            assert path.stat().st_size == info.file_size
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "evidence",
        "evidence (1)",
        "evidence (2)",
    ]
