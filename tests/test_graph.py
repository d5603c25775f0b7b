"""M2GRL's data layer: co-occurrence graphs (windows, symmetry, time cuts, holes, dedupe of
views), weighted random walks, skip-gram pairs, unigram^0.75 negatives and the streamed
skip-gram batches; all against hand-computed values."""

import inspect
from collections import Counter

import numpy as np
import pytest

import kgrec.data.graph as graph_mod
from kgrec.data.graph import (
    Graph,
    NegativeSampler,
    cooccurrence_graph,
    map_tokens,
    negative_table,
    random_walks,
    skipgram_batches,
    skipgram_pairs,
)

# three users: u0 = 0 1 2 1 (a long pause before the last), u1 = 3 _ 4 (a hole), u2 = 2 2 0
INDPTR = np.array([0, 4, 7, 10])
TOKENS = np.array([0, 1, 2, 1, 3, -1, 4, 2, 2, 0])
TIMES = np.array([0, 1, 2, 10, 0, 1, 2, 0, 1, 2])


def _dense(entries: dict[tuple[int, int], float], n: int = 5) -> np.ndarray:
    out = np.zeros((n, n))
    for (a, b), w in entries.items():
        out[a, b] = w
    return out


def test_graph_csr_from_edges_and_helpers():
    g = Graph.from_edges([2, 0, 0, 2, 0], [1, 2, 1, 1, 2], 3, weights=[1, 2, 3, 4, 5])
    assert g.indptr.tolist() == [0, 2, 2, 3]
    assert g.neighbors.tolist() == [1, 2, 1] and g.weights.tolist() == [3.0, 7.0, 5.0]
    assert g.degree().tolist() == [2, 0, 1] and g.out_weight().tolist() == [10.0, 0.0, 5.0]
    assert g.in_weight().tolist() == [0.0, 8.0, 7.0] and g.nnz == 3 and g.n_nodes == 3
    same = Graph(g.indptr.copy(), g.neighbors.copy(), g.weights.copy())
    assert same == g and same.checksum() == g.checksum()
    assert Graph.from_edges([0], [1], 3) != g
    with pytest.raises(ValueError, match="neighbors"):
        Graph(np.array([0, 1]), np.array([3]), np.array([1.0]))
    with pytest.raises(ValueError, match="weights"):
        Graph(np.array([0, 1, 1]), np.array([1]), np.array([-1.0]))


def test_cooccurrence_window_one_and_two_directed():
    g1 = cooccurrence_graph(INDPTR, TOKENS, 5)
    # u0: 0>1 1>2 2>1; u1: the hole adds nothing; u2: 2>2 is a self-loop, 2>0
    want1 = _dense({(0, 1): 1, (1, 2): 1, (2, 1): 1, (2, 0): 1})
    np.testing.assert_array_equal(g1.to_dense(), want1)
    g2 = cooccurrence_graph(INDPTR, TOKENS, 5, window=2)
    # + offset 2: u0 0>2 (1>1 dropped); u1 3>4 across the hole; u2 2>0 again
    want2 = _dense({(0, 1): 1, (0, 2): 1, (1, 2): 1, (2, 1): 1, (2, 0): 2, (3, 4): 1})
    np.testing.assert_array_equal(g2.to_dense(), want2)
    assert g2.weights.dtype == np.float64 and g2.indptr.tolist() == [0, 2, 3, 5, 6, 6]


def test_cooccurrence_symmetric_counts_both_orders():
    g = cooccurrence_graph(INDPTR, TOKENS, 5, window=2, symmetric=True)
    want = _dense({(0, 1): 1, (1, 0): 1, (0, 2): 3, (2, 0): 3, (1, 2): 2, (2, 1): 2,
                   (3, 4): 1, (4, 3): 1})
    np.testing.assert_array_equal(g.to_dense(), want)
    np.testing.assert_array_equal(g.to_dense(), g.to_dense().T)


def test_cooccurrence_time_gap_cut():
    g = cooccurrence_graph(INDPTR, TOKENS, 5, window=2, times=TIMES, max_gap=1)
    # kept: u0 0>1 (gap 1), 1>2 (1); cut: 2>1 (8), 0>2 (2); u1 3>4 (2) cut; u2 2>0 (1) kept
    np.testing.assert_array_equal(g.to_dense(), _dense({(0, 1): 1, (1, 2): 1, (2, 0): 1}))
    with pytest.raises(ValueError, match="times"):
        cooccurrence_graph(INDPTR, TOKENS, 5, max_gap=1)


def test_category_view_dedupe_consecutive():
    item_cat = np.array([0, 0, 1, 1, -1, 2])  # item 4 has no category
    cats = map_tokens(np.array([0, 1, 2, 3, 5]), item_cat)
    assert cats.tolist() == [0, 0, 1, 1, 2]
    ip = np.array([0, 5])
    # without dedupe, window 2 counts item pairs: 0>1 three times, 1>2 twice
    raw = cooccurrence_graph(ip, cats, 3, window=2)
    np.testing.assert_array_equal(raw.to_dense(), _dense({(0, 1): 3, (1, 2): 2}, 3))
    # with dedupe the sequence is 0 1 2: window 2 reaches one category further
    dd = cooccurrence_graph(ip, cats, 3, window=2, dedupe_consecutive=True)
    np.testing.assert_array_equal(dd.to_dense(), _dense({(0, 1): 1, (1, 2): 1, (0, 2): 1}, 3))
    # holes are never collapsed: 0 _ _ 1 stays 3 apart
    holes = map_tokens(np.array([0, 4, 4, 2]), item_cat)
    assert holes.tolist() == [0, -1, -1, 1]
    ip4 = np.array([0, 4])
    assert cooccurrence_graph(ip4, holes, 3, window=2, dedupe_consecutive=True).nnz == 0
    g3 = cooccurrence_graph(ip4, holes, 3, window=3, dedupe_consecutive=True)
    np.testing.assert_array_equal(g3.to_dense(), _dense({(0, 1): 1}, 3))
    # a collapsed run spans its first to last time: the gap to the next run is 6 - 5
    ip3, c3, t3 = np.array([0, 3]), np.array([0, 0, 1]), np.array([0, 5, 6])
    g = cooccurrence_graph(ip3, c3, 2, times=t3, max_gap=1, dedupe_consecutive=True)
    np.testing.assert_array_equal(g.to_dense(), _dense({(0, 1): 1}, 2))
    # the three users: u2's 2 2 0 becomes 2 0, so window 2 counts 2>0 once
    g = cooccurrence_graph(INDPTR, TOKENS, 5, window=2, dedupe_consecutive=True)
    want = _dense({(0, 1): 1, (0, 2): 1, (1, 2): 1, (2, 1): 1, (2, 0): 1, (3, 4): 1})
    np.testing.assert_array_equal(g.to_dense(), want)
    # runs never span two users: u0 = 0 1 ends with 1, u1 = 1 2 starts with it
    g = cooccurrence_graph(np.array([0, 2, 4]), np.array([0, 1, 1, 2]), 3,
                           times=np.array([0, 1, 9, 10]), max_gap=1, dedupe_consecutive=True)
    np.testing.assert_array_equal(g.to_dense(), _dense({(0, 1): 1, (1, 2): 1}, 3))


def test_cooccurrence_and_map_tokens_errors():
    with pytest.raises(ValueError, match="tokens"):
        cooccurrence_graph(INDPTR, TOKENS, 4)
    with pytest.raises(ValueError, match="tokens"):
        cooccurrence_graph(INDPTR, np.where(TOKENS == 3, -2, TOKENS), 5)
    with pytest.raises(ValueError, match="window"):
        cooccurrence_graph(INDPTR, TOKENS, 5, window=0)
    with pytest.raises(ValueError, match="indptr"):
        cooccurrence_graph(np.array([0, 4, 9]), TOKENS, 5)
    with pytest.raises(ValueError, match="tokens"):
        map_tokens(np.array([0, 6]), np.arange(6))
    assert map_tokens(np.array([-1, 2]), np.array([5, 6, 7])).tolist() == [-1, 7]


def _walk_graph() -> Graph:
    # 1 -> 2, 3, 4 with weights 1, 3, 6 (and a zero-weight edge 1 -> 0 never taken);
    # 0 -> 1, 2 -> 1, 4 -> 0; node 3 is a dead end
    return Graph.from_edges([1, 1, 1, 1, 0, 2, 4], [0, 2, 3, 4, 1, 1, 0], 5,
                            weights=[0, 1, 3, 6, 5, 2, 1])


def test_walk_transition_frequencies():
    g = _walk_graph()
    w = random_walks(g, np.full(20_000, 1), 2, rng=np.random.default_rng(0))
    assert w.shape == (20_000, 2) and w.dtype == np.int64 and (w[:, 0] == 1).all()
    freq = np.bincount(w[:, 1], minlength=5) / len(w)
    np.testing.assert_allclose(freq, [0.0, 0.0, 0.1, 0.3, 0.6], atol=0.02)
    assert freq[0] == 0  # the zero-weight edge
    again = random_walks(g, np.full(20_000, 1), 2, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(w, again)


def test_walks_follow_edges_and_stop_at_dead_ends():
    g = _walk_graph()
    starts = np.tile(np.arange(5), 400)
    w = random_walks(g, starts, 6, rng=np.random.default_rng(1))
    dense = g.to_dense()
    a, b = w[:, :-1], w[:, 1:]
    step = (a >= 0) & (b >= 0)
    assert (dense[a[step], b[step]] > 0).all()  # every step is a positive-weight edge
    # -1 only right after the dead end 3 or after another -1
    hole = b < 0
    assert ((a[hole] == 3) | (a[hole] == -1)).all()
    assert (b[a == 3] == -1).all() and (b[a == -1] == -1).all()
    assert (w[starts == 3, 1:] == -1).all() and (w[starts != 3, 1] >= 0).all()
    assert (w[starts == 2, 1] == 1).all()  # the only way out of 2
    with pytest.raises(ValueError, match="length"):
        random_walks(g, starts, 0, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="starts"):
        random_walks(g, np.array([5]), 3, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="empty"):
        random_walks(Graph.from_edges([], [], 3), np.array([0]), 3,
                     rng=np.random.default_rng(0))


def test_skipgram_pairs_fixed_window():
    walks = np.array([[0, 1, 2, -1], [5, 6, -1, -1]])
    c, x = skipgram_pairs(walks, 2)
    assert sorted(zip(c.tolist(), x.tolist(), strict=True)) == sorted(
        [(0, 1), (1, 0), (1, 2), (2, 1), (0, 2), (2, 0), (5, 6), (6, 5)])
    c, x = skipgram_pairs(walks, 1)
    assert sorted(zip(c.tolist(), x.tolist(), strict=True)) == sorted(
        [(0, 1), (1, 0), (1, 2), (2, 1), (5, 6), (6, 5)])
    c, _ = skipgram_pairs(walks, 10)  # a window wider than the walk
    assert len(c) == 8
    with pytest.raises(ValueError, match="window"):
        skipgram_pairs(walks, 0)


def test_skipgram_dynamic_window_is_a_subset():
    walks = np.arange(2000).reshape(200, 10)  # distinct nodes: |center - context| is distance
    walks[::7, 6:] = -1
    c, x = skipgram_pairs(walks, 4)
    dc, dx = skipgram_pairs(walks, 4, rng=np.random.default_rng(0))
    full = Counter(zip(c.tolist(), x.tolist(), strict=True))
    dyn = Counter(zip(dc.tolist(), dx.tolist(), strict=True))
    assert not dyn - full and len(dc) < len(c)
    dist, ddist = np.abs(c - x), np.abs(dc - dx)
    # distance d survives when the center's window (uniform on 1..4) is >= d: (5 - d) / 4
    for d in range(1, 5):
        frac = (ddist == d).sum() / (dist == d).sum()
        assert abs(frac - (5 - d) / 4) < 0.06, (d, frac)


def test_negative_sampler_unigram_power():
    counts = np.array([0, 1, 16, 81, 10])
    p = negative_table(counts)
    want = np.array([0.0, 1.0, 8.0, 27.0, 10 ** 0.75])
    np.testing.assert_allclose(p, want / want.sum())
    s = NegativeSampler(counts).sample((200, 1000), np.random.default_rng(0))
    assert s.shape == (200, 1000) and s.dtype == np.int64
    freq = np.bincount(s.ravel(), minlength=5) / s.size
    np.testing.assert_allclose(freq, want / want.sum(), atol=0.01)
    assert freq[0] == 0
    np.testing.assert_allclose(negative_table(counts, power=1.0), counts / counts.sum())
    with pytest.raises(ValueError, match="counts"):
        negative_table(np.zeros(3))


def _ring(n: int) -> Graph:
    a = np.arange(n)
    return Graph.from_edges(np.r_[a, a], np.r_[(a + 1) % n, (a - 1) % n], n,
                            weights=np.r_[np.ones(n), 2 * np.ones(n)])


def _epoch(g: Graph, **kw) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    args = dict(walks_per_node=2, walk_length=5, window=2, batch_size=16, n_neg=3, seed=0,
                chunk=7)
    return list(skipgram_batches(g, **{**args, **kw}))


def test_skipgram_batches_shapes_validity_determinism():
    g = _ring(30)
    batches = _epoch(g)
    assert all(b[0].shape == (16,) and b[1].shape == (16,) and b[2].shape == (16, 3)
               for b in batches[:-1])
    c = np.concatenate([b[0] for b in batches])
    x = np.concatenate([b[1] for b in batches])
    neg = np.concatenate([b[2] for b in batches])
    assert all(a.dtype == np.int64 for b in batches for a in b)
    assert 0 < len(batches[-1][0]) <= 16 and batches[-1][2].shape == (len(batches[-1][0]), 3)
    for a in (c, x, neg):
        assert a.min() >= 0 and a.max() < 30
    ring_dist = np.minimum((c - x) % 30, (x - c) % 30)
    assert (ring_dist <= 2).all()  # a context is at most `window` steps from its center
    # fixed window, no dead ends: 60 walks of 5 nodes, each 2 * (4 + 3) pairs
    fixed = _epoch(g, dynamic_window=False)
    assert sum(len(b[0]) for b in fixed) == 60 * 14
    assert len(_epoch(g, dynamic_window=False, drop_last=True)) == 60 * 14 // 16
    same = _epoch(g)
    assert len(same) == len(batches) and all(
        np.array_equal(a, b) for s, t in zip(same, batches, strict=True)
        for a, b in zip(s, t, strict=True))
    other = _epoch(g, epoch=1)
    assert not (len(other) == len(batches) and all(
        np.array_equal(s[0], t[0]) for s, t in zip(other, batches, strict=True)))


def test_skipgram_batches_stream_lazily(monkeypatch):
    walked = []
    real = graph_mod.random_walks

    def spy(graph, starts, length, *, rng):
        walked.append(len(starts))
        return real(graph, starts, length, rng=rng)

    monkeypatch.setattr(graph_mod, "random_walks", spy)
    # an epoch of this graph is ~2e5 * 10 walks * 40 nodes * 2 * 5 ~ 8e8 pairs
    stream = skipgram_batches(_ring(200_000), walks_per_node=10, walk_length=40, window=5,
                              batch_size=512, n_neg=5, seed=3, chunk=1000)
    assert inspect.isgenerator(stream)
    c, x, neg = next(stream)
    assert c.shape == (512,) and x.shape == (512,) and neg.shape == (512, 5)
    assert walked == [1000]  # one chunk was walked, not the epoch
    stream.close()


def test_skipgram_batches_validates_eagerly():
    g = _ring(10)
    kw = dict(walks_per_node=1, walk_length=5, window=2, batch_size=4, n_neg=2, seed=0)
    with pytest.raises(ValueError, match="window"):
        skipgram_batches(g, **{**kw, "window": 0})
    with pytest.raises(ValueError, match="walk_length"):
        skipgram_batches(g, **{**kw, "walk_length": 0})
    with pytest.raises(ValueError, match="starts"):
        skipgram_batches(g, **kw, starts=np.array([10]))
    with pytest.raises(ValueError, match="empty"):
        skipgram_batches(Graph.from_edges([], [], 4), **kw)
    # explicit starts: only those nodes start walks
    first = [b[0] for b in skipgram_batches(g, **{**kw, "walk_length": 2}, starts=np.array([0]),
                                            dynamic_window=False)]
    assert sorted(np.concatenate(first).tolist()) in ([0, 1], [0, 9])
