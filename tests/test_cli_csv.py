"""The CSV files people have (Excel's encodings and separators) and the create journal.

Pure and network-free; the same files go through ``eattest create`` in test_cli_robust.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from eattest_async._cli_csv import CsvError, Journal, read_table, row_key

FIELDS = ["companyIdType", "companyIdValue", "dossierReference", "description", "requiredDocuments"]
REQUIRED = ["companyIdType", "companyIdValue", "dossierReference"]
ROWS = [
    ["CIT001", "50382936800045", "REF-É-1", "Dépôt légal, façade", "ATT_VIGI;RIB"],
    ["CIT001", "50382936800045", "REF-2", "Entrepôt €", ""],
]


def table_text(separator: str, *, trailer: str = "") -> str:
    lines = [separator.join(FIELDS)]
    for row in ROWS:
        cells = [f'"{c}"' if separator in c or ";" in c else c for c in row]
        lines.append(separator.join(cells))
    return "\r\n".join(lines) + "\r\n" + trailer


def read(data: bytes, **options: object) -> list[tuple[int, dict[str, str]]]:
    table = read_table(data, "in.csv", fields=FIELDS, required=REQUIRED, **options)  # type: ignore[arg-type]
    return table.rows


EXPECTED = [
    (2, dict(zip(FIELDS, ROWS[0], strict=True))),
    (3, dict(zip(FIELDS, ROWS[1], strict=True))),
]


@pytest.mark.parametrize(
    ("label", "data"),
    [
        ("UTF-8", table_text(",").encode()),
        ("UTF-8 with BOM, Excel 'CSV UTF-8'", b"\xef\xbb\xbf" + table_text(",").encode()),
        ("Windows-1252 ';', Excel 'CSV' in France", table_text(";").encode("cp1252")),
        ("UTF-16 tab, Excel 'Unicode text'", table_text("\t").encode("utf-16")),
        ("UTF-16-LE without BOM", table_text("\t").encode("utf-16-le")),
        ("UTF-16-BE without BOM", table_text(";").encode("utf-16-be")),
        ("trailing empty rows ,,,,", table_text(",", trailer=",,,,\r\n,,,,\r\n").encode()),
        ("blank lines and spaces", ("\n" + table_text(";") + " ; ; \n\n").encode()),
    ],
)
def test_every_encoding_and_separator_excel_writes_reads_the_same(label: str, data: bytes) -> None:
    rows = read(data)
    assert [r for _, r in rows] == [r for _, r in EXPECTED], label


def test_row_numbers_are_those_a_spreadsheet_shows() -> None:
    data = table_text(",", trailer=",,,,\r\n").replace(
        "\r\nCIT001,50382936800045,REF-2", "\r\n,,,,\r\nCIT001,50382936800045,REF-2"
    )
    assert [n for n, _ in read(data.encode())] == [2, 4]


def test_header_spellings_and_unknown_columns() -> None:
    data = b"Company Id Type;company_id_value;DOSSIERREFERENCE;notes\nCIT001;503;R;x\n"
    table = read_table(data, "in.csv", fields=FIELDS, required=REQUIRED)
    assert table.rows == [
        (2, {"companyIdType": "CIT001", "companyIdValue": "503", "dossierReference": "R"})
    ]
    assert table.ignored == ["notes"]
    assert table.separator == ";"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "is empty"),
        (b"\r\n,,,\r\n", "is empty"),
        (b"companyIdType,companyIdValue,dossierReference\r\n", "no data rows"),
        (b"companyIdType;companyIdValue;dossierReference\r\n;;\r\n ; ;\r\n", "no data rows"),
        (b"hello world\nthis is not a table\n", "header line"),
        (b"companyIdType,companyIdValue\nCIT001,1\n", "no column dossierReference"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a text file"),
        (b"PK\x03\x04\x14\x00\x06\x00", "Excel workbook"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", ".xls"),
        (bytes(range(256)) * 4, "not a text file"),
        (b"a,b\x81\x8d\n", "not a text file"),
        (b"companyIdType,companyIdValue,dossierReference\nCIT001,1,R,extra,cells\n", "5 cells"),
        (b"companyIdType,companyIdType,dossierReference\n", "appears twice"),
    ],
)
def test_files_that_cannot_be_used_are_one_line_errors(data: bytes, message: str) -> None:
    with pytest.raises(CsvError, match=message) as caught:
        read(data)
    assert "\n" not in str(caught.value)


def test_an_explicit_encoding_wins_and_a_wrong_one_is_one_line() -> None:
    data = table_text(";").encode("cp1252")
    assert read(data, encoding="cp1252")[0][1]["description"] == "Dépôt légal, façade"
    with pytest.raises(CsvError, match="not valid utf-8"):
        read(data, encoding="utf-8")
    with pytest.raises(CsvError, match="unknown encoding"):
        read(data, encoding="klingon")


def test_the_journal_survives_a_cut_line_and_compacts_to_one_line_per_row(tmp_path: Path) -> None:
    path = tmp_path / "in.results.csv"
    journal = Journal(path)
    assert journal.load() == 0
    journal.open()
    journal.record(2, "REF-1", "50382936800045", "sending")
    journal.record(2, "REF-1", "50382936800045", "sent", processId="p1")
    journal.record(3, "REF-2", "50382936800045", "sending")
    journal.record(2, "REF-1", "50382936800045", "created", processId="p1", dossierId=7)
    journal.record(3, "REF-2", "50382936800045", "failed", codes="E103", error="closed\ncompany")
    journal.close()
    with path.open("ab") as handle:  # what kill -9 in the middle of a write leaves
        handle.write(b"4,REF-3,5038293680")
    again = Journal(path)
    assert again.load() == 5
    assert again.last[row_key("50382936800045", "REF-1")]["status"] == "created"
    assert again.last[row_key(" 503 829 368 00045", "REF-2 ")]["error"] == "closed company"
    again.open()  # ends the cut line first, so the next record is whole
    again.record(4, "REF-3", "50382936800045", "sending")
    again.compact()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("row,dossierReference,companyIdValue,status")
    assert [line.split(",")[:4] for line in lines[1:]] == [
        ["2", "REF-1", "50382936800045", "created"],
        ["3", "REF-2", "50382936800045", "failed"],
        ["4", "REF-3", "50382936800045", "sending"],
    ]
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_the_journal_keeps_each_row_identity_exactly(tmp_path: Path) -> None:
    """Read back after a kill (no compaction), each row finds its own line: none is
    folded into another ("A  B", "A\u00a0B" and "A B" are three rows)."""
    path = tmp_path / "in.results.csv"
    references = ["A  B", "A\u00a0B", "A B", "=A"]
    journal = Journal(path)
    journal.open()
    for row, reference in enumerate(references, start=2):
        journal.record(row, reference, "50382936800045", "sent", processId=f"p{row}")
    journal.close()
    again = Journal(path)
    assert again.load() == 4
    assert {k: v["processId"] for k, v in again.last.items()} == {
        row_key("50382936800045", r): f"p{row}" for row, r in enumerate(references, start=2)
    }


def test_a_results_file_of_something_else_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.results.csv"
    path.write_text("name,amount\nbob,3\n", encoding="utf-8")
    with pytest.raises(CsvError, match="not a results file"):
        Journal(path).load()


def test_the_journal_never_writes_a_formula_the_service_sent(tmp_path: Path) -> None:
    path = tmp_path / "in.results.csv"
    journal = Journal(path)
    journal.open()
    journal.record(2, "REF-1", "50382936800045", "failed", codes="E1", error="=HYPERLINK(1)")
    journal.compact()
    assert Journal(path).load() == 1
    assert "'=HYPERLINK(1)" in path.read_text(encoding="utf-8")
