"""Cutting a contacts CSV into blocks gives exactly the records one csv.reader gives."""

from __future__ import annotations

import csv
import io
import random

import pytest

from alerting.base.errors import InvalidInput
from alerting.directory.contact_csv import CsvFile, block_records

_CELLS = ("961234567", "", "Ana", "Pérez, Ana", 'dice "hola"', "línea 1\nlínea 2", "a\r\nb", '5" pulgadas',
          "x;y", "  ", "-33,45")


def _random_csv(rnd: random.Random, rows: int, *, plain: bool) -> str:
    """A messy but valid file: quoted values with commas, quotes and line breaks, blank lines,
    CRLF and LF, a quote inside an unquoted value."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=rnd.choice(("\n", "\r\n")))
    writer.writerow(["telefono", "nombre", "nota"])
    for _ in range(rows):
        if rnd.random() < 0.05:
            out.write("\n")
        elif rnd.random() < 0.05 and not plain:
            out.write(f'96123{rnd.randrange(10000):04d},Juan "Chino" Soto,x\n')  # not quoted, as some tools write
        else:
            writer.writerow([rnd.choice(_CELLS[:3] if plain else _CELLS) for _ in range(3)])
    return out.getvalue()


def _expected(body: str) -> list[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(body, newline=""))
    next(reader)
    return [(row, cells) for row, cells in enumerate(reader, start=2) if cells and any(cells)]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_blocks_give_the_records_and_row_numbers_of_one_reader(size: int) -> None:
    rnd = random.Random(size)
    kinds = set()
    for _ in range(40):
        body = _random_csv(rnd, rnd.randint(0, 60), plain=rnd.random() < 0.3)
        csv_file = CsvFile(io.BytesIO(body.encode()), "t.csv", None, 10**9)
        blocks = list(csv_file.blocks(size))
        assert [r for block in blocks for r in block_records(block)] == _expected(body)
        kinds |= {"lines" if b.lines is not None else "parsed" for b in blocks}
    assert kinds == {"lines", "parsed"}  # both ways of passing rows on were exercised


def test_a_block_with_a_broken_quote_refuses_the_file_naming_its_row() -> None:
    body = "telefono,nombre\n961234567,Ana\n961234568,\"Pe\n" + "x" * 200_000 + "\n"
    csv_file = CsvFile(io.BytesIO(body.encode()), "t.csv", None, 10**9)
    with pytest.raises(InvalidInput, match="not valid CSV at row 3"):
        for block in csv_file.blocks(1):
            block_records(block)
