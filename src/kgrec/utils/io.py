"""Atomic file writes (a reader sees the old file or the new one, never half of one), and the
JSON reader whose errors name the file and line."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["atomic_write", "atomic_write_text", "read_json"]


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(f)`` on a temporary file beside ``path``, then rename it into place.

    On an error the temporary file is removed and ``path`` is left as it was. The file is
    made readable by all (``mkstemp`` creates it private), as a results file should be.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | Path, text: str) -> None:
    """:func:`atomic_write` of UTF-8 ``text``."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def read_json(path: str | Path) -> Any:
    """The JSON value in ``path``; ``FileNotFoundError`` or ``ValueError`` naming the file (and
    the line of a syntax error) for a missing, unreadable or damaged file."""
    import json

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {'not a file' if path.exists() else 'not found'}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); the file is "
                         "damaged") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not valid UTF-8 ({exc.reason}); the file is damaged") \
            from None
