"""Ripple sets of RippleNet (Wang et al., CIKM'18, "RippleNet: Propagating User Preferences on
the Knowledge Graph for Recommender Systems"), built as the authors' code builds them
(hwwang55/RippleNet, ``data_loader.get_ripple_set``), vectorised over users.

For every user, hop 0 starts from the *seeds*: the entities of the items the user clicked in
the training split (one seed per positive row, duplicates kept). The candidate triples of a
hop are the KG triples whose head is one of the hop's seeds, concatenated seed by seed (an
entity that occurs twice among the seeds contributes its triples twice). Exactly ``n_memory``
of them are drawn uniformly: with replacement when there are fewer candidates than
``n_memory``, without replacement otherwise (``np.random.choice(..., replace=n < n_memory)``
in the authors' code). The seeds of hop ``k`` are the *sampled* tails of hop ``k - 1``.

Sinks: a hop without candidates (no seed has an outgoing triple) reuses the user's previous
hop, as the authors' code copies the last hop's set. A user whose hop 0 is empty (no click in
the training split, or clicked items without an outgoing triple: the authors drop such users
from all splits) gets the *placeholder* triple ``(pad_entity, pad_relation, pad_entity)`` in
every slot of every hop, with ``pad_entity = n_entities`` and ``pad_relation = n_relations``:
one index past the real vocabularies, so a model that allocates one extra row can learn a
"user without a history" vector (RippleNet here does).

The graph is used as given (directed ``head -> tail``, like the authors' ``construct_kg``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["RippleSets", "build_ripple_sets", "positive_seeds", "sample_positions"]


@dataclass(frozen=True)
class RippleSets:
    """Fixed-size ripple sets of all users.

    Attributes:
        heads, rels, tails: ``(n_users, n_hop, n_memory)`` int64 triples of each user's hops.
        placeholder: ``(n_users,)`` bool, users whose every slot is the placeholder triple.
    """

    heads: np.ndarray
    rels: np.ndarray
    tails: np.ndarray
    placeholder: np.ndarray


def positive_seeds(train: np.ndarray, item_entity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(users, entities)`` of the positive rows (label 1) of ``train``: the hop-0 seeds."""
    train = np.asarray(train, dtype=np.int64).reshape(-1, 3)
    pos = train[train[:, 2] == 1]
    return pos[:, 0], np.asarray(item_entity, dtype=np.int64)[pos[:, 1]]


def sample_positions(sizes: np.ndarray, n_memory: int, rng: np.random.Generator) -> np.ndarray:
    """For each row ``u``, ``n_memory`` positions drawn uniformly from ``range(sizes[u])``.

    With replacement where ``sizes[u] < n_memory``, without replacement (a uniform random
    subset, in no particular order) where ``sizes[u] >= n_memory``; rows with ``sizes[u] == 0``
    get zeros (the caller treats them as empty). Without-replacement rows use Floyd's
    algorithm, one step per column vectorised over rows, so no Python loop runs per row.

    Returns:
        ``(len(sizes), n_memory)`` int64.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    r = rng.random((len(sizes), n_memory))
    out = np.minimum(np.floor(r * sizes[:, None]).astype(np.int64),
                     np.maximum(sizes - 1, 0)[:, None])
    big = sizes >= n_memory
    if big.any():
        s, rb = sizes[big], r[big]
        chosen = np.empty((len(s), n_memory), dtype=np.int64)
        for i in range(n_memory):  # Floyd: j runs over s - n_memory .. s - 1
            j = s - n_memory + i
            t = np.minimum(np.floor(rb[:, i] * (j + 1)).astype(np.int64), j)
            taken = (chosen[:, :i] == t[:, None]).any(axis=1)
            chosen[:, i] = np.where(taken, j, t)
        out[big] = chosen
    out[sizes == 0] = 0
    return out


def build_ripple_sets(
    kg: np.ndarray,
    users: np.ndarray,
    entities: np.ndarray,
    *,
    n_users: int,
    n_entities: int,
    n_relations: int,
    n_hop: int,
    n_memory: int,
    seed: int = 0,
) -> RippleSets:
    """Ripple sets of ``n_users`` users (see the module docstring).

    Args:
        kg: ``(m, 3)`` triples ``(head, relation, tail)`` over ``[0, n_entities)``.
        users, entities: the hop-0 seeds, aligned (from :func:`positive_seeds`).
        n_users, n_entities, n_relations: vocabulary sizes (the placeholder triple uses
            ``n_entities`` and ``n_relations`` as its indices).
        n_hop: number of hops (>= 1).
        n_memory: triples per hop (>= 1).
        seed: seeds the sampling (same inputs and seed: same sets).

    Returns:
        :class:`RippleSets` with ``(n_users, n_hop, n_memory)`` int64 arrays.
    """
    if n_hop < 1 or n_memory < 1:
        raise ValueError(f"n_hop and n_memory must be >= 1, got {n_hop} and {n_memory}")
    kg = np.asarray(kg, dtype=np.int64).reshape(-1, 3)
    users = np.asarray(users, dtype=np.int64).ravel()
    entities = np.asarray(entities, dtype=np.int64).ravel()
    if len(users) != len(entities):
        raise ValueError(f"users and entities differ in length ({len(users)} != {len(entities)})")
    if len(kg) and (kg[:, [0, 2]].min() < 0 or kg[:, [0, 2]].max() >= n_entities):
        raise ValueError(f"KG entities must lie in [0, {n_entities})")
    if len(users) and (users.min() < 0 or users.max() >= n_users):
        raise ValueError(f"seed users must lie in [0, {n_users})")
    if len(entities) and (entities.min() < 0 or entities.max() >= n_entities):
        raise ValueError(f"seed entities must lie in [0, {n_entities})")
    rng = np.random.default_rng(seed)
    pad_e, pad_r = n_entities, n_relations

    # CSR adjacency over heads; the extra entity (the placeholder) has no outgoing triple.
    order = np.argsort(kg[:, 0], kind="stable")
    deg = np.bincount(kg[:, 0], minlength=n_entities + 1).astype(np.int64)
    indptr = np.concatenate([[0], np.cumsum(deg)])

    shape = (n_users, n_hop, n_memory)
    heads = np.full(shape, pad_e, dtype=np.int64)
    rels = np.full(shape, pad_r, dtype=np.int64)
    tails = np.full(shape, pad_e, dtype=np.int64)

    by_user = np.argsort(users, kind="stable")
    seed_user, seed_ent = users[by_user], entities[by_user]
    for hop in range(n_hop):
        if hop > 0:  # seeds: the previous hop's sampled tails, already grouped by user
            seed_user = np.repeat(np.arange(n_users, dtype=np.int64), n_memory)
            seed_ent = tails[:, hop - 1].ravel()
        sdeg = deg[seed_ent]
        sizes = np.bincount(seed_user, weights=sdeg, minlength=n_users).astype(np.int64)
        pos = sample_positions(sizes, n_memory, rng)
        full = sizes > 0
        if full.any():
            # position p of user u's candidates -> (seed s, offset within s's triples)
            cum = np.cumsum(sdeg)
            g = (np.cumsum(sizes) - sizes)[full, None] + pos[full]
            s = np.searchsorted(cum, g, side="right")
            triple = order[indptr[seed_ent[s]] + g - (cum - sdeg)[s]]
            heads[full, hop] = kg[triple, 0]
            rels[full, hop] = kg[triple, 1]
            tails[full, hop] = kg[triple, 2]
        if hop > 0:  # sinks: reuse the previous hop (placeholders stay placeholders)
            empty = ~full
            heads[empty, hop] = heads[empty, hop - 1]
            rels[empty, hop] = rels[empty, hop - 1]
            tails[empty, hop] = tails[empty, hop - 1]
    return RippleSets(heads=heads, rels=rels, tails=tails, placeholder=heads[:, 0, 0] == pad_e)
