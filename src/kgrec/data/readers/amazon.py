"""Amazon review sequences as processed for S3-Rec (Zhou et al., CIKM'20,
github.com/RUCAIBox/CIKM2020-S3Rec, folder ``data/``).

* ``<Name>.txt``: one line per user, ``user item1 item2 ...`` separated by spaces, items in
  time order; ids are 1-based integers; no timestamps (the event's position in the file is
  its time, so sequences keep the file order);
* ``<Name>_item2attributes.json``: ``{"item": [attribute, ...], ...}`` (brand and category
  ids, shared across items) -> the multi-valued item field ``attribute``.

No KG. Parsing is vectorised over the file's bytes (token boundaries and line numbers with
numpy), not a loop per line.
"""

from __future__ import annotations

import json
from itertools import chain
from pathlib import Path

import numpy as np

from kgrec.data.convert import events_dataset, natural_vocab
from kgrec.data.dataset import DataError, Dataset
from kgrec.data.features import FeatureTable
from kgrec.data.readers.table import file_sha256, read_text
from kgrec.utils.lazy import pd

__all__ = ["read_amazon", "read_item_attributes", "read_sequences"]

_WS = np.frombuffer(b" \t\n\r\x0b\x0c", np.uint8)  # what bytes.split() splits on


def read_sequences(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(users, items)`` int64 of every event of a ``user item1 item2 ...`` file, in file
    order. Raises :class:`DataError` (file, line, reason) for a non-integer id, a line
    without items or a user on two lines."""
    path = Path(path)
    read_text(path, "ascii")  # existence and encoding, with the line of a bad byte
    raw = path.read_bytes()
    arr = np.frombuffer(raw, np.uint8)
    sep = np.isin(arr, _WS)
    starts = np.flatnonzero(~sep & np.r_[True, sep[:-1]])
    if len(starts) == 0:
        raise DataError("empty file: no sequence lines", path=path)
    line = np.cumsum(arr == 10)[starts] + 1
    tok = np.array(raw.split())
    first = np.r_[True, line[1:] != line[:-1]]
    digit = np.char.isdigit(tok)
    if not digit.all():
        k = int(np.flatnonzero(~digit)[0])
        what = "user id" if first[k] else "item id"
        raise DataError(f"malformed sequence line: {what} {tok[k].decode()!r} is not an "
                        "integer", path=path, line=int(line[k]))
    long = np.char.str_len(tok.astype("U")) > 18  # int64 holds every 18-digit number
    if long.any():
        k = int(np.flatnonzero(long)[0])
        raise DataError(f"id {tok[k].decode()[:40]!r} is too large (at most 18 digits)",
                        path=path, line=int(line[k]))
    ids = tok.astype(np.int64)
    heads = np.flatnonzero(first)
    n_tok = np.diff(np.r_[heads, len(tok)])
    if (n_tok < 2).any():
        k = int(heads[np.flatnonzero(n_tok < 2)[0]])
        raise DataError(f"malformed sequence line: user {ids[k]} has no items "
                        "(expected 'user item1 item2 ...')", path=path, line=int(line[k]))
    user_ids = ids[heads]
    order = np.argsort(user_ids, kind="stable")
    dup = np.flatnonzero(user_ids[order][1:] == user_ids[order][:-1])
    if len(dup):
        k = int(heads[np.sort(order[dup + 1])[0]])
        raise DataError(f"user {ids[k]} already has a line", path=path, line=int(line[k]))
    users = np.repeat(user_ids, n_tok)[~first]
    return users, ids[~first]


def read_item_attributes(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(items, attributes)`` pairs (raw id strings) of an ``item2attributes.json``."""
    path = Path(path)
    text = read_text(path, "utf-8")
    try:
        d = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"bad JSON: {exc.msg}", path=path, line=exc.lineno) from None
    if not isinstance(d, dict):
        raise DataError("expected a JSON object {item: [attribute, ...]}", path=path, line=1)

    def line_of(key: str) -> int:
        return text[: max(text.find(f'"{key}"'), 0)].count("\n") + 1

    keys = np.asarray(list(d), dtype=str)
    vals = list(d.values())
    if len(keys) and not np.char.isdigit(keys).all():
        k = str(keys[~np.char.isdigit(keys)][0])
        raise DataError(f"item id {k!r} is not an integer", path=path, line=line_of(k))
    if not all(map(lambda v: type(v) is list, vals)):
        k = next(k for k, v in d.items() if type(v) is not list)
        raise DataError(f"attributes of item {k} are not a list", path=path, line=line_of(k))
    lengths = np.fromiter(map(len, vals), np.int64, len(vals))
    flat_list = list(chain.from_iterable(vals))
    flat = np.array(flat_list)
    if len(flat) and (flat.dtype.kind != "i" or (flat < 0).any()):
        ok = np.array([type(v) is int and v >= 0 for v in flat_list])  # error path only
        j = int(np.flatnonzero(~ok)[0])
        k = str(np.repeat(keys, lengths)[j])
        raise DataError(f"attribute {flat_list[j]!r} of item {k} is not an integer id",
                        path=path, line=line_of(k))
    return np.repeat(keys, lengths), flat.astype(np.int64).astype(str)


def read_amazon(sequences: str | Path, attributes: str | Path | None = None, *, name: str,
                seed: int = 0, checksums: bool = True) -> Dataset:
    """An S3-Rec Amazon dataset: every event a positive (MKR's conversion adds as many
    sampled negatives per user), events timed by their position in the file, users and items
    indexed by id order, the ``attribute`` item field from ``attributes`` when given."""
    seq_p = Path(sequences)
    users, items = read_sequences(seq_p)
    used = [seq_p]
    attr_items = attr_vals = np.zeros(0, str)
    if attributes is not None:
        attr_p = Path(attributes)
        attr_items, attr_vals = read_item_attributes(attr_p)
        used.append(attr_p)
    item_vocab = natural_vocab(items, attr_items)
    features = None
    if attributes is not None:
        features = FeatureTable(len(item_vocab))
        rows = pd.Index(item_vocab).get_indexer(attr_items)
        features.add("attribute", rows, attr_vals, multi=True)
    ds = events_dataset(
        name, users_raw=users, items_raw=items, positive=np.ones(len(users), bool),
        item_raw_ids=item_vocab, item_features=features, seed=seed,
        source_checksums={p.name: file_sha256(p) for p in used} if checksums else {},
        where=str(seq_p),
    )
    ds.meta.update({"reader": "amazon_s3rec", "timestamps": "file order"})
    return ds
