"""CSV: one section per row, as "header: value" lines so each row stands on its own."""

from __future__ import annotations

import csv
import io

from .document import ParsedDocument, Section
from .errors import CorruptedFile, NoTextFound
from .sniff import csv_dialect, extension


def parse_csv(text: str, filename: str = "") -> ParsedDocument:
    """The first row is the header; empty values are left out of a row's lines."""
    dialect: type[csv.Dialect] | str = csv_dialect(text[: 64 * 1024], hinted_csv=True) or (
        "excel-tab" if extension(filename) == ".tsv" else "excel"
    )
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), dialect))
    except csv.Error as exc:
        raise CorruptedFile("csv", str(exc)[:200]) from exc
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise NoTextFound("The CSV file contains no rows.")
    header = [cell.strip() or f"column {number}" for number, cell in enumerate(rows[0], 1)]
    if len(rows) == 1:
        raise NoTextFound("The CSV file has a header row but no data rows.")
    sections = []
    for number, row in enumerate(rows[1:], start=1):
        names = header + [f"column {n}" for n in range(len(header) + 1, len(row) + 1)]
        # A short row leaves the last columns out; names always cover the row.
        pairs = zip(names[: len(row)], row, strict=True)
        lines = [f"{name}: {value.strip()}" for name, value in pairs if value.strip()]
        sections.append(Section(text="\n".join(lines), metadata={"row": number}))
    delimiter = getattr(dialect, "delimiter", "\t" if dialect == "excel-tab" else ",")
    return ParsedDocument.from_sections(
        "csv", sections, {"columns": header, "rows": len(sections), "delimiter": delimiter}
    )
