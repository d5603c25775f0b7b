"""Per-user interaction sequences in time order, as CSR (the input of sequential recommenders:
SASRec, S3-Rec, BERT4Rec and the leave-last-out protocol)."""

from __future__ import annotations

import numpy as np

__all__ = ["user_sequences"]


def user_sequences(user: np.ndarray, item: np.ndarray, timestamp: np.ndarray, n_users: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each user's events sorted by time; ties keep the input (file) order.

    Returns ``(indptr, items, timestamps)``: user ``u``'s sequence is
    ``items[indptr[u]:indptr[u + 1]]`` (``indptr`` has ``n_users + 1`` entries; a user without
    events has an empty slice). One :func:`numpy.lexsort`, no loop per user.
    """
    user = np.asarray(user, dtype=np.int64)
    item = np.asarray(item, dtype=np.int64)
    timestamp = np.asarray(timestamp, dtype=np.int64)
    if not (len(user) == len(item) == len(timestamp)):
        raise ValueError("user, item and timestamp must have the same length")
    if len(user) and (user.min() < 0 or user.max() >= n_users):
        raise ValueError(f"user index out of range [0, {n_users})")
    # last key sorts first: by user, then time, then position (explicit, so ties are stable)
    order = np.lexsort((np.arange(len(user)), timestamp, user))
    indptr = np.r_[0, np.cumsum(np.bincount(user, minlength=n_users))].astype(np.int64)
    return indptr, item[order], timestamp[order]
