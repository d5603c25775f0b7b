"""Co-occurrence graphs of users' behaviour, weighted random walks and streamed skip-gram
batches: the data layer of M2GRL (Wang et al., "M2GRL: A Multi-task Multi-view Graph
Representation Learning Framework for Web-scale Recommender Systems", KDD'20).

M2GRL learns one embedding table per *view* of the items, each from its own graph, and aligns
the views afterwards. A view's graph is built from the users' time-ordered behaviour:

1. Each user's item sequence (CSR ``(indptr, items)``, oldest first, as
   :func:`kgrec.data.sequences.user_sequences` or
   :func:`kgrec.models.sequential.base.sequences_from` give it) is mapped into the view's
   vocabulary: the item view keeps the items, the category view replaces every item by its
   category, a KG view by its entity (:func:`map_tokens`; an item without a value becomes
   ``-1``, a hole that adds no edge).
2. Every pair of positions ``i < j <= i + window`` of one sequence adds ``1`` to the directed
   edge ``tokens[i] -> tokens[j]`` (:func:`cooccurrence_graph`; ``window=1``, consecutive
   behaviour, is EGES's construction, which M2GRL builds on: Wang et al., "Billion-scale
   Commodity Embedding for E-commerce Recommendation in Alibaba", KDD'18). Pairs further
   apart in time than ``max_gap`` are cut (sessions), self-loops dropped. In a coarse view a
   run of items of one category would only make self-loops and push the next category out of
   the window, so a view's sequence can collapse consecutive repeats first
   (``dedupe_consecutive``).
3. Weighted random walks on the graph (DeepWalk: Perozzi et al., KDD'14; with node2vec's
   weighted transitions at ``p = q = 1``: Grover & Leskovec, KDD'16) turn it back into node
   sequences, which is what lets rare items borrow the neighbourhood of frequent ones.
4. Skip-gram pairs within a window of each walk, with word2vec's dynamic window and negatives
   drawn from the unigram distribution raised to 0.75 (Mikolov et al., NIPS'13), feed one
   skip-gram task per view (:func:`skipgram_batches`, a generator of ready batches: an
   epoch's pairs, ~``n_nodes * walks_per_node * walk_length * window``, are never
   materialised; see :class:`kgrec.models.base.Task`).

Everything is vectorised: the graph is one sort of ``window`` shifted copies of the sequence;
a walk step advances all walkers at once with one :func:`numpy.searchsorted` on the global
cumulative edge weights; pairs are cut with one shifted comparison per window offset.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["Graph", "NegativeSampler", "cooccurrence_graph", "map_tokens", "negative_table",
           "random_walks", "skipgram_batches", "skipgram_pairs"]


def _check_csr(indptr: np.ndarray, n: int, name: str = "indptr") -> None:
    if indptr.ndim != 1 or len(indptr) < 1 or indptr[0] != 0 or indptr[-1] != n or \
            (np.diff(indptr) < 0).any():
        raise ValueError(f"{name} must start at 0, never decrease and end at {n}")


def _check_positive(value: int, name: str) -> int:
    if int(value) < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


@dataclass(frozen=True, eq=False)
class Graph:
    """A weighted directed graph over ``n_nodes`` nodes, as CSR: the out-edges of node ``v``
    go to ``neighbors[indptr[v]:indptr[v + 1]]`` (increasing) with ``weights[...]``.

    Attributes:
        indptr: ``(n_nodes + 1,)`` int64 row pointers.
        neighbors: ``(nnz,)`` int64 edge targets.
        weights: ``(nnz,)`` float64 non-negative edge weights (co-occurrence counts).
    """

    indptr: np.ndarray
    neighbors: np.ndarray
    weights: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "indptr", np.asarray(self.indptr, dtype=np.int64))
        object.__setattr__(self, "neighbors", np.asarray(self.neighbors, dtype=np.int64))
        object.__setattr__(self, "weights", np.asarray(self.weights, dtype=np.float64))
        nb, w = self.neighbors, self.weights
        _check_csr(self.indptr, len(nb))
        if w.shape != nb.shape:
            raise ValueError("weights must have one entry per neighbor")
        if len(nb) and (nb.min() < 0 or nb.max() >= self.n_nodes):
            raise ValueError(f"neighbors must lie in [0, {self.n_nodes})")
        if len(w) and not (np.isfinite(w).all() and w.min() >= 0):
            raise ValueError("weights must be finite and non-negative")

    @classmethod
    def from_edges(cls, src: np.ndarray, dst: np.ndarray, n_nodes: int,
                   weights: np.ndarray | None = None) -> Graph:
        """The graph of edges ``src[k] -> dst[k]`` (weight ``weights[k]``, default 1); repeated
        edges are merged, their weights summed. One sort, no loop."""
        src = np.asarray(src, dtype=np.int64)
        dst = np.asarray(dst, dtype=np.int64)
        n = int(n_nodes)
        if src.shape != dst.shape or src.ndim != 1:
            raise ValueError("src and dst must be 1-d and of the same length")
        for name, a in (("src", src), ("dst", dst)):
            if len(a) and (a.min() < 0 or a.max() >= n):
                raise ValueError(f"{name} node ids must lie in [0, {n})")
        w = np.ones(len(src)) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != src.shape:
            raise ValueError("weights must have one entry per edge")
        keys, inv = np.unique(src * n + dst, return_inverse=True)
        summed = np.bincount(inv.ravel(), weights=w, minlength=len(keys))
        indptr = np.zeros(n + 1, np.int64)
        np.cumsum(np.bincount(keys // max(n, 1), minlength=n), out=indptr[1:])
        return cls(indptr, keys % max(n, 1), summed)

    @property
    def n_nodes(self) -> int:
        return len(self.indptr) - 1

    @property
    def nnz(self) -> int:
        """Number of (distinct) edges."""
        return len(self.neighbors)

    def __repr__(self) -> str:
        return f"Graph(n_nodes={self.n_nodes}, nnz={self.nnz}, weight={self.weights.sum():g})"

    def degree(self) -> np.ndarray:
        """``(n_nodes,)`` number of out-edges of each node."""
        return np.diff(self.indptr)

    def out_weight(self) -> np.ndarray:
        """``(n_nodes,)`` total weight of each node's out-edges."""
        return np.bincount(self.sources(), weights=self.weights, minlength=self.n_nodes)

    def in_weight(self) -> np.ndarray:
        """``(n_nodes,)`` total weight of each node's in-edges."""
        return np.bincount(self.neighbors, weights=self.weights, minlength=self.n_nodes)

    def sources(self) -> np.ndarray:
        """``(nnz,)`` the source node of each edge (the expanded ``indptr``)."""
        return np.repeat(np.arange(self.n_nodes, dtype=np.int64), self.degree())

    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(src, dst, weight)`` of every edge, sorted by ``(src, dst)``."""
        return self.sources(), self.neighbors, self.weights

    def to_dense(self) -> np.ndarray:
        """``(n_nodes, n_nodes)`` weight matrix (small graphs: tests, inspection)."""
        out = np.zeros((self.n_nodes, self.n_nodes))
        out[self.sources(), self.neighbors] = self.weights
        return out

    def checksum(self) -> str:
        """sha256 over the three arrays."""
        from kgrec.data.dataset import array_checksum

        return array_checksum(self.indptr, self.neighbors, self.weights)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Graph):
            return NotImplemented
        return (np.array_equal(self.indptr, other.indptr)
                and np.array_equal(self.neighbors, other.neighbors)
                and np.array_equal(self.weights, other.weights))


# ---------------------------------------------------------------------- building graphs
def map_tokens(tokens: np.ndarray, lookup: np.ndarray) -> np.ndarray:
    """``lookup[tokens]``, with ``-1`` (no token) kept as ``-1``: maps an item sequence into a
    view's vocabulary (``lookup[i]`` is item ``i``'s category, entity ...; ``-1`` where it has
    none). ``ValueError`` if a token is not ``-1`` and not an index of ``lookup``."""
    tokens = np.asarray(tokens, dtype=np.int64)
    lookup = np.asarray(lookup, dtype=np.int64)
    if lookup.ndim != 1:
        raise ValueError("lookup must be a 1-d int array")
    if tokens.size and (tokens.min() < -1 or tokens.max() >= len(lookup)):
        raise ValueError(f"tokens must be -1 or lie in [0, {len(lookup)}) (the lookup's size)")
    if lookup.size and lookup.min() < -1:
        raise ValueError("lookup values must be -1 (missing) or node ids >= 0")
    return np.where(tokens >= 0, lookup[np.maximum(tokens, 0)] if lookup.size else -1, -1)


def cooccurrence_graph(indptr: np.ndarray, tokens: np.ndarray, n_nodes: int, *,
                       window: int = 1, symmetric: bool = False,
                       times: np.ndarray | None = None, max_gap: float | None = None,
                       dedupe_consecutive: bool = False) -> Graph:
    """The weighted co-occurrence graph of token sequences (M2GRL's single-view graph).

    ``tokens[indptr[u]:indptr[u + 1]]`` is sequence ``u`` in time order; tokens are node ids
    in ``[0, n_nodes)`` or ``-1`` (no token: the position keeps its place, so it neither joins
    nor splits its neighbours, and adds no edge). Every pair of positions ``i < j <= i +
    window`` of one sequence with both tokens present and different adds 1 to the edge
    ``tokens[i] -> tokens[j]`` (self-loops are dropped); ``symmetric`` adds ``tokens[j] ->
    tokens[i]`` as well, so the weight of ``a - b`` counts both orders. The default is the
    directed graph: behaviour has an order (EGES builds its item graph directed, and a walk
    on it follows the users' transitions); ``symmetric`` suits unordered co-occurrence.

    Args:
        times: per-position time stamps (same order as ``tokens``); with ``max_gap`` a pair
            counts only if ``times[j] - times[i] <= max_gap`` (a session cut).
        dedupe_consecutive: collapse each run of equal consecutive tokens into one position
            *before* windowing (``-1`` holes are never collapsed). A coarse view (item ->
            category) turns a user's browsing within one category into such runs; without
            the collapse they make only self-loops (dropped) and push the next category out
            of the window, so ``window`` would count items, not category changes. With
            ``times``, a collapsed run spans its first to its last time stamp, and the gap of
            a pair is from the end of the earlier run to the start of the later one.

    One pass per window offset over shifted copies of the arrays, then one sort
    (:meth:`Graph.from_edges`).
    """
    indptr = np.asarray(indptr, dtype=np.int64)
    tokens = np.asarray(tokens, dtype=np.int64)
    n = int(n_nodes)
    window = _check_positive(window, "window")
    if tokens.ndim != 1:
        raise ValueError("tokens must be 1-d")
    _check_csr(indptr, len(tokens))
    if n < 0:
        raise ValueError(f"n_nodes must be >= 0, got {n_nodes}")
    if tokens.size and (tokens.min() < -1 or tokens.max() >= n):
        raise ValueError(f"tokens must be -1 or lie in [0, {n}) (n_nodes)")
    if max_gap is not None:
        if times is None:
            raise ValueError("max_gap needs times")
        if max_gap < 0:
            raise ValueError(f"max_gap must be >= 0, got {max_gap}")
    t_start = t_end = None
    if times is not None:
        times = np.asarray(times)
        if times.shape != tokens.shape:
            raise ValueError("times must have one entry per token")
        t_start = t_end = times
    seq = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))
    if dedupe_consecutive and len(tokens):
        keep = np.ones(len(tokens), bool)
        keep[1:] = ~((seq[1:] == seq[:-1]) & (tokens[1:] == tokens[:-1]) & (tokens[1:] >= 0))
        kept = np.flatnonzero(keep)
        if times is not None:
            # a sequence's first position is always kept, so a run never spans two sequences
            t_start, t_end = times[kept], times[np.r_[kept[1:], len(tokens)] - 1]
        tokens, seq = tokens[kept], seq[kept]
    src, dst = [], []
    for d in range(1, window + 1):
        a, b = tokens[:-d], tokens[d:]
        ok = (seq[:-d] == seq[d:]) & (a >= 0) & (b >= 0) & (a != b)
        if max_gap is not None:
            ok &= (t_start[d:] - t_end[:-d]) <= max_gap
        src.append(a[ok])
        dst.append(b[ok])
    src_a = np.concatenate(src) if src else np.zeros(0, np.int64)
    dst_a = np.concatenate(dst) if dst else np.zeros(0, np.int64)
    if symmetric:
        src_a, dst_a = np.r_[src_a, dst_a], np.r_[dst_a, src_a]
    return Graph.from_edges(src_a, dst_a, n)


# ---------------------------------------------------------------------- walks
def _check_walkable(graph: Graph) -> None:
    if graph.nnz == 0 or not graph.weights.max() > 0:
        raise ValueError(f"graph is empty: it has no edge of positive weight to walk ({graph!r})")


def random_walks(graph: Graph, starts: np.ndarray, length: int, *,
                 rng: np.random.Generator) -> np.ndarray:
    """``(len(starts), length)`` int64 weighted random walks, column 0 the start node.

    The next node is drawn among the current node's out-edges with probability proportional to
    their weights. All walkers advance together: one uniform draw each, scaled into the
    current node's slice of the global cumulative weights, and one
    :func:`numpy.searchsorted`. A walker at a node without (positive-weight) out-edges stops:
    the rest of its row is ``-1``. ``length`` counts nodes (DeepWalk's ``t``), so ``length=2``
    is one step.
    """
    length = _check_positive(length, "length")
    starts = np.asarray(starts, dtype=np.int64)
    if starts.ndim != 1:
        raise ValueError("starts must be 1-d")
    n = graph.n_nodes
    _check_walkable(graph)
    if starts.size and (starts.min() < 0 or starts.max() >= n):
        raise ValueError(f"starts must lie in [0, {n})")
    walks = np.full((len(starts), length), -1, np.int64)
    walks[:, 0] = starts
    cum = np.cumsum(graph.weights)
    before = np.r_[0.0, cum]  # before[k]: total weight of the edges before edge k
    lo, hi = before[graph.indptr[:-1]], before[graph.indptr[1:]]
    # last positive-weight edge of each node (where a rounded-up draw is clipped to)
    positive = np.flatnonzero(graph.weights > 0)
    last = positive[np.maximum(np.searchsorted(positive, graph.indptr[1:]) - 1, 0)] \
        if len(positive) else np.zeros(n, np.int64)
    live = hi > lo
    idx = np.flatnonzero(live[starts])
    cur = starts[idx]
    for step in range(1, length):
        if len(idx) == 0:
            break
        u = rng.random(len(idx))
        target = lo[cur] + u * (hi[cur] - lo[cur])
        k = np.minimum(np.searchsorted(cum, target, side="right"), last[cur])
        cur = graph.neighbors[k]
        walks[idx, step] = cur
        alive = live[cur]
        idx, cur = idx[alive], cur[alive]
    return walks


def skipgram_pairs(walks: np.ndarray, window: int, *, rng: np.random.Generator | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``(centers, contexts)`` int64: every ordered pair of positions of one walk at most
    ``window`` apart (both directions), neither ``-1``.

    With ``rng``, word2vec's dynamic window: each (walk, position) draws its own window
    ``b`` uniformly from ``1..window`` and pairs only with contexts at most ``b`` away (near
    contexts weigh more; a subset of the fixed-window pairs). A node met twice in one walk
    may pair with itself, as in word2vec.
    """
    window = _check_positive(window, "window")
    walks = np.asarray(walks, dtype=np.int64)
    if walks.ndim != 2:
        raise ValueError("walks must be 2-d (n_walks, length)")
    reach = None if rng is None else rng.integers(1, window + 1, size=walks.shape)
    centers, contexts = [], []
    for d in range(1, min(window, walks.shape[1] - 1) + 1):
        a, b = walks[:, :-d], walks[:, d:]
        both = (a >= 0) & (b >= 0)
        fwd, bwd = both, both  # fwd: center a, context b; bwd: center b, context a
        if reach is not None:
            fwd, bwd = both & (reach[:, :-d] >= d), both & (reach[:, d:] >= d)
        centers += [a[fwd], b[bwd]]
        contexts += [b[fwd], a[bwd]]
    if not centers:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(centers), np.concatenate(contexts)


# ---------------------------------------------------------------------- negatives
def negative_table(counts: np.ndarray, power: float = 0.75) -> np.ndarray:
    """``(n,)`` float64 probabilities ``counts ** power / sum`` (word2vec's unigram^0.75
    noise distribution; nodes of count 0 are never drawn)."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1:
        raise ValueError("counts must be 1-d")
    if counts.size and not (np.isfinite(counts).all() and counts.min() >= 0):
        raise ValueError("counts must be finite and non-negative")
    p = counts ** float(power)
    p[counts == 0] = 0.0  # 0 ** 0 is 1
    total = p.sum()
    if not total > 0:
        raise ValueError("counts must have a positive entry")
    return p / total


class NegativeSampler:
    """Draws node ids from :func:`negative_table` ``(counts, power)`` by binary search of
    uniform draws on its cumulative distribution (exact, unlike word2vec's 10^8-slot table).
    """

    def __init__(self, counts: np.ndarray, power: float = 0.75):
        self.probs = negative_table(counts, power)
        self.cdf = np.cumsum(self.probs)
        self._last = int(np.flatnonzero(self.probs > 0)[-1])

    def __len__(self) -> int:
        return len(self.probs)

    def sample(self, shape: int | tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """int64 node ids of the given shape."""
        u = rng.random(shape) * self.cdf[-1]
        return np.minimum(np.searchsorted(self.cdf, u, side="right"), self._last)


# ---------------------------------------------------------------------- streamed batches
def skipgram_batches(graph: Graph, *, walks_per_node: int, walk_length: int, window: int,
                     batch_size: int, n_neg: int, seed: int, epoch: int = 0,
                     starts: np.ndarray | None = None, dynamic_window: bool = True,
                     chunk: int = 2048, neg_counts: np.ndarray | None = None,
                     power: float = 0.75, drop_last: bool = False
                     ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """One epoch of skip-gram batches ``(centers (b,), contexts (b,), negatives (b, n_neg))``,
    int64, streamed (DeepWalk's corpus, cut on the fly).

    ``walks_per_node`` passes; each walks once from every start node in a fresh random
    order (DeepWalk), ``chunk`` walkers at a time: a chunk's walks are cut into pairs
    (:func:`skipgram_pairs`, ``dynamic_window`` as in word2vec), the pairs shuffled (with the
    fewer than ``batch_size`` left over from the previous chunk) and yielded in full batches.
    Memory is one chunk's pairs, about ``chunk * walk_length * 2 * window``; nothing is built
    before the first batch but the sampler. The last, partial batch of the epoch is yielded
    unless ``drop_last``.

    Args:
        starts: start nodes of a pass (repeats allowed); default every node with an out-edge.
        neg_counts: counts for the noise distribution. Default: each node's total edge weight
            (in + out), its co-occurrence count in the behaviour; on a symmetric graph that is
            exactly proportional to the random walk's stationary distribution, i.e. to the
            node frequencies word2vec would count over the walks, so the choice needs no pass
            over the corpus. Accidental hits (a negative equal to the context) are not
            removed: mask them in the loss if it matters.
        seed, epoch: the stream is a function of ``(seed, epoch)`` alone
            (``numpy.random.default_rng((seed, epoch))``), so epochs differ and a resumed run
            replays the same batches.
    """
    walks_per_node = _check_positive(walks_per_node, "walks_per_node")
    walk_length = _check_positive(walk_length, "walk_length")
    window = _check_positive(window, "window")
    batch_size = _check_positive(batch_size, "batch_size")
    chunk = _check_positive(chunk, "chunk")
    if int(n_neg) < 0:
        raise ValueError(f"n_neg must be >= 0, got {n_neg}")
    n_neg = int(n_neg)
    _check_walkable(graph)
    if starts is None:
        starts = np.flatnonzero(graph.out_weight() > 0)
    else:
        starts = np.asarray(starts, dtype=np.int64)
        if starts.ndim != 1 or (starts.size and (starts.min() < 0
                                                 or starts.max() >= graph.n_nodes)):
            raise ValueError(f"starts must be a 1-d array of node ids in [0, {graph.n_nodes})")
    if neg_counts is None:
        neg_counts = graph.in_weight() + graph.out_weight()
    elif len(neg_counts) != graph.n_nodes:
        raise ValueError(f"neg_counts must have n_nodes = {graph.n_nodes} entries")
    sampler = NegativeSampler(neg_counts, power)
    return _skipgram_stream(graph, sampler, starts, walks_per_node, walk_length, window,
                            batch_size, n_neg, np.random.default_rng((int(seed), int(epoch))),
                            dynamic_window, chunk, drop_last)


def _skipgram_stream(graph: Graph, sampler: NegativeSampler, starts: np.ndarray,
                     walks_per_node: int, walk_length: int, window: int, batch_size: int,
                     n_neg: int, rng: np.random.Generator, dynamic_window: bool, chunk: int,
                     drop_last: bool) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    # a separate generator function, so skipgram_batches validates its arguments eagerly
    carry_c = carry_x = np.zeros(0, np.int64)

    def batch(c: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return c, x, sampler.sample((len(c), n_neg), rng)

    for _ in range(walks_per_node):
        order = rng.permutation(starts)
        for s in range(0, len(order), chunk):
            walks = random_walks(graph, order[s:s + chunk], walk_length, rng=rng)
            c, x = skipgram_pairs(walks, window, rng=rng if dynamic_window else None)
            c, x = np.r_[carry_c, c], np.r_[carry_x, x]
            perm = rng.permutation(len(c))
            c, x = c[perm], x[perm]
            full = len(c) - len(c) % batch_size
            for b in range(0, full, batch_size):
                yield batch(c[b:b + batch_size], x[b:b + batch_size])
            carry_c, carry_x = c[full:], x[full:]
    if len(carry_c) and not drop_last:
        yield batch(carry_c, carry_x)
