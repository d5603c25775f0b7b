"""Feature augmentations of the item tower's self-supervised task (Yao et al., "Self-supervised
Learning for Large-scale Item Recommendations", CIKM'21, section 3.2, and the two-tower
lecture notes that follow it). Each returns, for a batch of ``n`` items with ``k`` fields, two
views as boolean masks: ``(n, k)`` *fields* masked (the field's vector is zeroed) and, for
value dropout, ``(n, T)`` *values* dropped. ``True`` means masked / dropped.

* ``mask``: each view masks its own random half of the fields (``k // 2``), independently
  (the lecture notes' random mask).
* ``complement``: the fields are split at random into two halves; the first view masks one,
  the second view the other (the paper's random feature masking, RFM: the two views share no
  field, so the task cannot be solved by copying one).
* ``dropout``: each value of a multi-valued field is dropped with probability ``rate``, in
  each view independently; no field is masked.
* ``mi``: correlated feature masking (the paper's CFM): a seed field drawn uniformly, masked
  together with the fields most correlated with it (mutual information, computed once from the
  data: :func:`kgrec.data.features.field_mutual_information`), ``k // 2`` fields in all; the
  other view masks the complement.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["AUGMENTATIONS", "augment_views", "mi_groups"]

AUGMENTATIONS = ("none", "mask", "complement", "dropout", "mi")


def mi_groups(mi: np.ndarray, n_mask: int | None = None) -> np.ndarray:
    """``(k, k)`` bool: row ``s`` marks the fields masked with seed field ``s``: the seed and
    the ``n_mask - 1`` other fields of largest mutual information with it (ties: the lower
    field index), ``n_mask = k // 2`` by default."""
    mi = np.asarray(mi, dtype=np.float64)
    k = len(mi)
    n_mask = k // 2 if n_mask is None else int(n_mask)
    score = mi.copy()
    np.fill_diagonal(score, np.inf)
    order = np.lexsort((np.broadcast_to(np.arange(k), (k, k)), -score), axis=1)
    groups = np.zeros((k, k), dtype=bool)
    rows = np.repeat(np.arange(k), n_mask)
    groups[rows, order[:, :n_mask].reshape(-1)] = True
    return groups


def _random_half(n: int, k: int, generator: torch.Generator | None, device) -> torch.Tensor:
    """``(n, k)`` bool with ``k // 2`` random fields True in each row."""
    noise = torch.rand(n, k, generator=generator, device=device)
    rank = noise.argsort(dim=1).argsort(dim=1)
    return rank < k // 2


def augment_views(kind: str, n: int, k: int, *, multi_columns: torch.Tensor | None = None,
                  groups: torch.Tensor | None = None, rate: float = 0.5,
                  generator: torch.Generator | None = None, device=None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None,
                             torch.Tensor | None]:
    """Two views of ``n`` items with ``k`` fields: ``(fields1, fields2, values1, values2)``.

    Args:
        kind: one of :data:`AUGMENTATIONS` (``none``: nothing masked).
        multi_columns: ``(T,)`` bool, the value columns of multi-valued fields (``dropout``).
        groups: ``(k, k)`` bool seed-field groups of :func:`mi_groups` (``mi``).
        rate: ``dropout``'s drop probability.
        generator: the random source (a task's private generator, kept by checkpoints).
    """
    none = torch.zeros(n, k, dtype=torch.bool, device=device)
    if kind == "none":
        return none, none, None, None
    if kind == "mask":
        return (_random_half(n, k, generator, device), _random_half(n, k, generator, device),
                None, None)
    if kind == "complement":
        first = _random_half(n, k, generator, device)
        return first, ~first, None, None
    if kind == "mi":
        if groups is None:
            raise ValueError("augmentation 'mi' needs the groups of mi_groups()")
        seed = torch.randint(0, k, (n,), generator=generator, device=device)
        first = groups.to(device)[seed]
        return first, ~first, None, None
    if kind == "dropout":
        if multi_columns is None:
            raise ValueError("augmentation 'dropout' needs multi_columns")
        cols = multi_columns.to(device)

        def drop() -> torch.Tensor:
            r = torch.rand(n, len(cols), generator=generator, device=device)
            return (r < rate) & cols[None, :]

        return none, none, drop(), drop()
    raise ValueError(f"unknown augmentation {kind!r}; known: {', '.join(AUGMENTATIONS)}")
