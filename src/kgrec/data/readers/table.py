"""Delimited text tables: one validating parser (pandas' C parser, with a slow line-by-line
pass only to explain an error) and the file checksum.

A missing or empty file, a wrong separator, a line with the wrong number of fields or a
non-numeric value raises :class:`~kgrec.data.dataset.DataError` naming the file, the 1-based
line and the reason.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from pathlib import Path

import numpy as np

from kgrec.data.dataset import DataError
from kgrec.utils.lazy import pd

__all__ = ["check_file", "data_line", "file_sha256", "read_table", "read_text"]

#: integer fields are parsed through float64, exact below 2**53; larger ids are refused
MAX_INT = 2**53

_SEP_NAMES = {"\t": "TAB", ",": "','", ";": "';'", "::": "'::'", " ": "space", "|": "'|'"}


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _guess_sep(line: str) -> str | None:
    for sep in ("::", "\t", ";", ",", "|", " "):
        if sep in line:
            return sep
    return None


def read_text(path: str | Path, encoding: str = "utf-8") -> str:
    """A file's text without a leading byte-order mark; :class:`DataError` for a missing file,
    a directory, or undecodable bytes (with the line)."""
    path = Path(path)
    check_file(path)
    data = path.read_bytes()
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"not valid {encoding} text ({exc.reason}, byte "
                        f"0x{data[exc.start]:02x})", path=path, line=line) from None
    return text[1:] if text.startswith("\ufeff") else text


def check_file(path: str | Path) -> Path:
    """``path`` if it is a readable regular file, else :class:`DataError` saying what it is."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        raise DataError("is a directory, expected a file", path=path)
    if path.exists():
        raise DataError("not a regular file", path=path)
    raise DataError("file not found", path=path)


def data_line(path: str | Path, row: int, *, header: bool = False,
              encoding: str = "utf-8") -> int:
    """The 1-based line of ``path`` that holds data row ``row`` (0-based, counting the rows
    :func:`read_table` returns: blank lines and the header skipped). For error messages only:
    it reads the file again."""
    text = read_text(path, encoding)
    lines = text.split("\n")
    start = 1 if header else 0
    nonblank = [i for i in range(start, len(lines)) if lines[i].strip()]
    return nonblank[row] + 1 if 0 <= row < len(nonblank) else row + 1 + start


def _explain(path: Path, lines: list[str], sep: str, n_cols: int, first: int,
             allow_empty: bool = False) -> DataError:
    """Find the first line with the wrong number of fields (slow path, errors only)."""
    for i, line in enumerate(lines, start=first):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        fields = line.split(sep)
        if len(fields) != n_cols:
            guess = _guess_sep(line) if len(fields) == 1 else None
            hint = ""
            if guess is not None and guess != sep:
                hint = f"; the line looks {_SEP_NAMES.get(guess, repr(guess))}-separated " \
                       "(wrong separator?)"
            return DataError(
                f"expected {n_cols} fields separated by {_SEP_NAMES.get(sep, repr(sep))}, "
                f"found {len(fields)}{hint}: {line[:80]!r}",
                path=path, line=i,
            )
        if not allow_empty and any(not f.strip() for f in fields):
            return DataError(f"empty field: {line[:80]!r}", path=path, line=i)
    return DataError("could not parse the file", path=path)


def read_table(
    path: str | Path,
    *,
    sep: str,
    n_cols: int,
    header: bool = False,
    int_cols: tuple[int, ...] = (),
    float_cols: tuple[int, ...] = (),
    encoding: str = "utf-8",
    quoted: bool = False,
    allow_empty: bool = False,
) -> list[np.ndarray]:
    """Parse a delimited text file into one array per column, validating every line.

    Args:
        path: the file.
        sep: field separator (one character, or ``'::'``).
        n_cols: exact number of fields per line.
        header: skip the first line.
        int_cols / float_cols: columns that must parse as integers / numbers (returned as
            int64 / float64); the others are returned as strings.
        encoding: text encoding (Book-Crossing is Latin-1).
        quoted: fields may be wrapped in double quotes (Book-Crossing CSV).
        allow_empty: string fields may be empty (MovieLens-100K ``u.item``'s video date).

    Blank lines are skipped. Raises :class:`DataError` with file, line and reason.
    """
    path = Path(path)
    text = read_text(path, encoding)
    first = 2 if header else 1
    body = text.split("\n", 1)[1] if header and "\n" in text else ("" if header else text)
    if not body.strip():
        raise DataError("empty file: no data lines" + (" after the header" if header else ""),
                        path=path)
    psep = sep
    if len(sep) > 1:  # the C parser takes one character; '::' data never holds \x1f
        body, psep = body.replace(sep, "\x1f"), "\x1f"
    quoting = csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE
    if allow_empty:  # the C parser pads a short line with empty fields: count separators
        lines = pd.Series(body.split("\n")).str.rstrip("\r")
        n_sep = lines.str.count(re.escape(psep)).to_numpy()
        if ((n_sep != n_cols - 1) & (lines.str.strip() != "").to_numpy()).any():
            raise _explain(path, body.split("\n"), sep, n_cols, first, allow_empty)
    fast = _parse_fast(body, psep, n_cols, quoting, int_cols, float_cols, allow_empty)
    if fast is not None:
        return fast
    return _parse_checked(path, body, sep, psep, n_cols, quoting, first, int_cols, float_cols,
                          allow_empty)


def _parse_fast(body: str, psep: str, n_cols: int, quoting: int, int_cols: tuple[int, ...],
                float_cols: tuple[int, ...], allow_empty: bool = False
                ) -> list[np.ndarray] | None:
    """Typed C-parser pass; ``None`` when anything looks wrong (the checked pass explains)."""
    numeric = set(int_cols) | set(float_cols)
    dtype = {j: (np.float64 if j in numeric else object) for j in range(n_cols)}
    try:
        df = pd.read_csv(io.StringIO(body), sep=psep, header=None, dtype=dtype,
                         keep_default_na=False, na_values={j: [""] for j in numeric},
                         skip_blank_lines=True, engine="c", quoting=quoting)
    except (pd.errors.ParserError, ValueError, TypeError):
        return None
    if df.shape[1] != n_cols:
        return None
    out = []
    for j in range(n_cols):
        col = df[j].to_numpy()
        if j in numeric:
            if not np.isfinite(col).all():
                return None
            if j in int_cols:
                if not np.array_equal(col, np.round(col)) or (np.abs(col) >= MAX_INT).any():
                    return None
                col = col.astype(np.int64)
        else:
            col = pd.Series(col, dtype=object).str.strip().to_numpy(dtype=str)
            if not allow_empty and (col == "").any():
                return None
        out.append(col)
    return out


def _parse_checked(path: Path, body: str, sep: str, psep: str, n_cols: int, quoting: int,
                   first: int, int_cols: tuple[int, ...], float_cols: tuple[int, ...],
                   allow_empty: bool = False) -> list[np.ndarray]:
    """String pass with line numbers: validates every line and raises :class:`DataError`."""
    try:
        df = pd.read_csv(io.StringIO(body), sep=psep, header=None, dtype=object,
                         keep_default_na=False, skip_blank_lines=False, engine="c",
                         quoting=quoting)
    except pd.errors.ParserError:
        raise _explain(path, body.split("\n"), sep, n_cols, first, allow_empty) from None
    lines = np.arange(len(df)) + first
    cols = df.to_numpy(dtype=str)
    blank = (cols == "").all(axis=1) if cols.size else np.zeros(len(df), bool)
    if cols.shape[1] != n_cols or (not allow_empty and (cols[~blank] == "").any()):
        raise _explain(path, body.split("\n"), sep, n_cols, first, allow_empty)
    cols, lines = cols[~blank], lines[~blank]
    out: list[np.ndarray] = []
    for j in range(n_cols):
        col = np.char.strip(cols[:, j])
        if j in int_cols or j in float_cols:
            num = pd.to_numeric(pd.Series(col), errors="coerce").to_numpy(dtype=np.float64)
            bad = ~np.isfinite(num)
            if j in int_cols:
                bad |= num != np.round(num)
                huge = np.isfinite(num) & (np.abs(num) >= MAX_INT)
                if huge.any() and not bad[:int(np.argmax(huge))].any():
                    k = int(np.argmax(huge))
                    raise DataError(f"field {j + 1} is {str(col[k])!r}: integer too large "
                                    "(ids must be below 2^53; re-index the file)",
                                    path=path, line=int(lines[k]))
            if bad.any():
                k = int(np.flatnonzero(bad)[0])
                what = "an integer" if j in int_cols else "a number"
                raise DataError(f"field {j + 1} is {str(col[k])!r}, expected {what}",
                                path=path, line=int(lines[k]))
            out.append(num.astype(np.int64) if j in int_cols else num)
        else:
            out.append(col)
    return out
