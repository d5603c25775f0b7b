"""MKR's two training steps with hand-written backward passes on NumPy views of the
parameters: the CPU fast path of :class:`~kgrec.models.kg.mkr.MKR` (Wang et al., WWW'19).

At the authors' settings (batch 256, d = 4 on Last.FM) one step is ~150 operations on tiny
arrays, so its cost is dispatch: ~5 us per torch operation against ~1 us per NumPy one. These
kernels read the parameters through NumPy views (no copy), write each gradient into a
persistent ``.grad`` tensor, and leave the update to the task's torch optimizer. Their loss and
gradients equal autograd's on :meth:`MKR.rec_loss` / :meth:`MKR.kge_loss` (``tests/test_mkr.py``);
a step takes about half the time of the same backward written in torch and a third of autograd.

Cross & compress unit, per layer, with ``a = e W[:, :2]`` and ``c = v W[:, 2:]``::

    v' = a_0 v + c_0 e + b_V          e' = a_1 v + c_1 e + b_E
    dv = a_0 dv' + a_1 de' + [dv'.e, de'.e] W[:, 2:]^T
    de = c_0 dv' + c_1 de' + [dv'.v, de'.v] W[:, :2]^T
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from kgrec.models.kg.mkr import MKR

__all__ = ["kge_step", "rec_step", "supported"]


def supported(model: MKR) -> bool:
    """Whether the kernels apply: CPU float32 parameters, cross & compress units."""
    t = model.table
    return t.device.type == "cpu" and t.dtype == torch.float32 and model.config.unit == "cc"


class _Views:
    """NumPy views of a model's parameters and of persistent gradient buffers."""

    def __init__(self, m: MKR):
        def grad(p: torch.nn.Parameter) -> np.ndarray:
            g = torch.zeros_like(p)
            self.grads[p] = g
            return g.numpy()

        self.grads: dict[torch.nn.Parameter, torch.Tensor] = {}
        self.key = _key(m)
        self.table = m.table.detach().numpy()
        self.user_off = np.array([0, m.item_offset])
        self.item_entity = m.item_entity.numpy() + m.entity_offset
        self.entity_item = m.entity_item.numpy() + m.item_offset
        self.entity_offset = m.entity_offset
        self.relations = m.relation_emb.detach().numpy()
        self.user_mlp = _layers(m.user_mlp, grad)
        self.tail_mlp = _layers(m.tail_mlp, grad)
        self.kge_mlp = _layers(m.kge_mlp, grad)
        self.cc = _layers(m.cc, grad)
        self.g_table = self.grads[m.table] = torch.zeros_like(m.table)
        self.g_relations = self.grads[m.relation_emb] = torch.zeros_like(m.relation_emb)
        self.ones_d = np.ones(self.table.shape[1], self.table.dtype)
        self.ones_n = np.ones(0, self.table.dtype)

    def ones(self, n: int) -> np.ndarray:
        """``n`` ones: a row sum ``ones(n) @ x`` is a matmul, ~4x faster than ``x.sum(0)``
        on these shapes."""
        if len(self.ones_n) < n:
            self.ones_n = np.ones(n, self.table.dtype)
        return self.ones_n[:n]


def _layers(mods, grad) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """``(W, b, dW, db)`` per layer: parameter views and their gradient buffers."""
    return [(m.weight.detach().numpy(), m.bias.detach().numpy(), grad(m.weight), grad(m.bias))
            for m in mods]


def _key(m: MKR) -> tuple[int, int]:
    return id(m.table), m.table.data_ptr()


def _views(m: MKR) -> _Views:
    """The model's views, rebuilt when the table was replaced (:meth:`MKR._apply`, behind
    ``.to``/``.float``, drops them for every parameter)."""
    v = m.__dict__.get("_cpu_views")
    if v is None or v.key != _key(m):
        v = m.__dict__["_cpu_views"] = _Views(m)
    return v


def _dense_fwd(x: np.ndarray, layers, saved: list) -> np.ndarray:
    """ReLU dense layers; saves ``(input, mask)`` per layer."""
    for W, b, _, _ in layers:
        pre = x @ W
        pre += b
        mask = pre > 0
        saved.append((x, mask))
        x = pre * mask
    return x


def _dense_bwd(g: np.ndarray, layers, saved: list, ones: np.ndarray) -> np.ndarray:
    """Backward through :func:`_dense_fwd`: fills the layers' gradient buffers, returns the
    gradient of the input (``ones``: a vector of batch-size ones)."""
    for (W, _, dW, db), (x, mask) in zip(reversed(layers), reversed(saved), strict=True):
        g = g * mask
        dW[...] = x.T @ g
        db[...] = ones @ g
        g = g @ W.T
    return g


def _cross_fwd(v: np.ndarray, e: np.ndarray, units, saved: list) -> tuple[np.ndarray,
                                                                          np.ndarray]:
    for W, b, _, _ in units:
        a = e @ W[:, :2]
        c = v @ W[:, 2:]
        saved.append((v, e, a, c))
        v, e = a[:, 0:1] * v + c[:, 0:1] * e + b[0], a[:, 1:2] * v + c[:, 1:2] * e + b[1]
    return v, e


def _cross_bwd(gv: np.ndarray | None, ge: np.ndarray | None, units, saved: list,
               V: _Views) -> tuple[np.ndarray, np.ndarray]:
    """Backward through :func:`_cross_fwd` from ``dv'`` and ``de'`` (None: zero). Row dot
    products and column sums are matmuls with vectors of ones (faster than ``.sum``)."""
    d1 = V.ones_d
    for (W, _, dW, db), (v, e, a, c) in zip(reversed(units), reversed(saved), strict=True):
        n = len(v)
        ones = V.ones(n)
        ga = np.zeros((n, 2), v.dtype)  # dv'.v, de'.v
        gc = np.zeros((n, 2), v.dtype)  # dv'.e, de'.e
        if gv is not None:
            ga[:, 0] = (gv * v) @ d1
            gc[:, 0] = (gv * e) @ d1
        if ge is not None:
            ga[:, 1] = (ge * v) @ d1
            gc[:, 1] = (ge * e) @ d1
        dW[:, :2] = e.T @ ga
        dW[:, 2:] = v.T @ gc
        db[0] = 0.0 if gv is None else ones @ gv
        db[1] = 0.0 if ge is None else ones @ ge
        nv = gc @ W[:, 2:].T
        ne = ga @ W[:, :2].T
        if gv is not None:
            nv += a[:, 0:1] * gv
            ne += c[:, 0:1] * gv
        if ge is not None:
            nv += a[:, 1:2] * ge
            ne += c[:, 1:2] * ge
        gv, ge = nv, ne
    return gv, ge


def _table_grad(m: MKR, V: _Views, idx: np.ndarray, rows: np.ndarray) -> torch.Tensor:
    """The table's gradient: ``rows`` added at ``idx``; frozen entity rows zeroed."""
    g = V.g_table
    g.zero_()
    g.index_add_(0, torch.from_numpy(idx), torch.from_numpy(rows))
    mask = getattr(m, "grad_mask", None)
    if mask is not None:
        g.mul_(mask)
    return g


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # stable for any x


def rec_step(m: MKR, batch: torch.Tensor) -> torch.Tensor:
    """RS task (inner-product head): BCE + L2 on ``(user, item, label)`` rows; writes the
    gradients of the table, the user MLP and the cross & compress units; returns the loss."""
    V = _views(m)
    b = batch.numpy()
    n = len(b)
    idx = np.concatenate([(b[:, :2] + V.user_off).T.ravel(),
                          np.take(V.item_entity, b[:, 1])])
    x = np.take(V.table, idx, axis=0)
    u, v, e = x[:n], x[n:2 * n], x[2 * n:]
    s_mlp: list = []
    s_cc: list = []
    u = _dense_fwd(u, V.user_mlp, s_mlp)
    v, _ = _cross_fwd(v, e, V.cc, s_cc)
    logits = (u * v) @ V.ones_d
    y = b[:, 2].astype(logits.dtype)
    l2 = m.config.l2_weight
    ones = V.ones(n)
    softplus = np.logaddexp(0.0, logits)
    loss = float(ones @ (softplus - y * logits)) / n \
        + l2 * 0.5 * (float(np.vdot(u, u)) + float(np.vdot(v, v)))
    g = ((np.exp(logits - softplus) - y) * (1.0 / n))[:, None]  # sigmoid - y, over n
    gu = g * v + l2 * u
    gv = g * u + l2 * v
    gv, ge = _cross_bwd(gv, None, V.cc, s_cc, V)
    gu = _dense_bwd(gu, V.user_mlp, s_mlp, ones)
    m.table.grad = _table_grad(m, V, idx, np.concatenate([gu, gv, ge]))
    for mods in (m.user_mlp, m.cc):
        for layer in mods:
            layer.weight.grad = V.grads[layer.weight]
            layer.bias.grad = V.grads[layer.bias]
    return torch.tensor(loss)


def kge_step(m: MKR, batch: torch.Tensor) -> torch.Tensor:
    """KGE task (the paper's scorer): ``-sigma(t . t_hat)`` + L2 on ``(head, relation, tail)``
    rows whose head is an item; writes the gradients of the table, the relation table, the
    cross & compress units, the tail MLP and the KGE MLP; returns the loss."""
    V = _views(m)
    b = batch.numpy()
    n = len(b)
    heads, rels, tails = b[:, 0], b[:, 1], b[:, 2]
    idx = np.concatenate([np.take(V.entity_item, heads), heads + V.entity_offset,
                          tails + V.entity_offset])
    x = np.take(V.table, idx, axis=0)
    v, e, t = x[:n], x[n:2 * n], x[2 * n:]
    s_cc: list = []
    s_tail: list = []
    s_kge: list = []
    _, e = _cross_fwd(v, e, V.cc, s_cc)
    t = _dense_fwd(t, V.tail_mlp, s_tail)
    d = e.shape[1]
    h = _dense_fwd(np.concatenate([e, np.take(V.relations, rels, axis=0)], 1), V.kge_mlp,
                   s_kge)
    t_hat = _sigmoid(h)
    score = _sigmoid((t * t_hat) @ V.ones_d)
    l2 = m.config.l2_weight
    ones = V.ones(n)
    loss = -float(ones @ score) / n \
        + l2 * 0.5 * (float(np.vdot(e, e)) + float(np.vdot(t, t)))
    gz = (score * (1.0 - score) * (-1.0 / n))[:, None]
    gt = gz * t_hat + l2 * t
    gh = _dense_bwd(gz * t * t_hat * (1.0 - t_hat), V.kge_mlp, s_kge, ones)
    ge = gh[:, :d] + l2 * e
    gr = V.g_relations
    gr.zero_()
    gr.index_add_(0, torch.from_numpy(rels), torch.from_numpy(np.ascontiguousarray(gh[:, d:])))
    gt = _dense_bwd(gt, V.tail_mlp, s_tail, ones)
    gv, ge = _cross_bwd(None, ge, V.cc, s_cc, V)
    m.table.grad = _table_grad(m, V, idx, np.concatenate([gv, ge, gt]))
    m.relation_emb.grad = gr
    for mods in (m.cc, m.tail_mlp, m.kge_mlp):
        for layer in mods:
            layer.weight.grad = V.grads[layer.weight]
            layer.bias.grad = V.grads[layer.bias]
    return torch.tensor(loss)
