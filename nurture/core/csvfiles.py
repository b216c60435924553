"""Reading uploaded CSV files: bytes to text in whatever encoding a spreadsheet wrote, and the
delimiter it used. Shared by the candidate import and the suppression-list import."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from itertools import islice

from nurture.core.errors import ValidationError

MAX_BYTES = 20 * 1024 * 1024


DELIMITERS = (",", ";", "\t", "|")


DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}


def decode(data: bytes) -> tuple[str, list[str]]:
    """Bytes of an upload → text, with a note when it was not UTF-8; refuse what is not a CSV."""
    if len(data) > MAX_BYTES:
        raise file_error(
            f"The file is larger than {MAX_BYTES // 1024 // 1024} MB. Split it into smaller files."
        )
    if not data.strip():
        raise file_error("The file is empty.")
    if data.startswith(codecs.BOM_UTF8):
        return _no_nul(data[len(codecs.BOM_UTF8) :].decode("utf-8", "replace")), []
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # Excel's "Unicode text" export; a file cut mid-character keeps what it has.
        return _no_nul(data.decode("utf-16", "replace")), []
    if data.startswith(b"PK\x03\x04") or b"\x00" in data:
        raise file_error(
            "This is not a CSV file (an Excel workbook?). In your spreadsheet, choose "
            "File → Save as → CSV UTF-8, and upload that."
        )
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("cp1252")
        return text, ["The file is not UTF-8; it was read as Windows-1252 (Western European)."]
    except UnicodeDecodeError:
        # cp1252 leaves five bytes undefined; Latin-1 maps every byte.
        text = data.decode("latin-1")
        return text, ["The file is not UTF-8; it was read as Latin-1 (ISO-8859-1)."]


def _no_nul(text: str) -> str:
    """Refuse text with NUL characters: no spreadsheet writes them, and PostgreSQL cannot
    store them."""
    if "\x00" in text:
        raise file_error(
            "This is not a CSV file: it holds NUL characters. In your spreadsheet, choose "
            "File → Save as → CSV UTF-8, and upload that."
        )
    return text


def sniff_delimiter(text: str) -> str:
    """The delimiter (comma, semicolon, tab or pipe) that splits the first lines most evenly."""
    sample = text[:65536]
    if len(text) > len(sample) and "\n" in sample:
        sample = sample[: sample.rindex("\n") + 1]
    best, best_score = ",", (-1.0, 0)
    for delimiter in DELIMITERS:
        try:
            rows = [r for r in islice(_reader(sample, delimiter), 50) if any(c.strip() for c in r)]
        except csv.Error:
            continue
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        body = rows[1:]
        even = sum(1 for r in body if len(r) == width) / len(body) if body else 1.0
        score = (even, width)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _reader(text: str, delimiter: str) -> Iterator[list[str]]:
    """A csv.reader over text (``newline=""``, so quoted line breaks stay inside their cell)."""
    return csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)


def file_error(message: str) -> ValidationError:
    """A problem with the uploaded file as a whole, reported on the ``file`` field."""
    return ValidationError(message, {"file": message})
