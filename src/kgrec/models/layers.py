"""Building blocks shared by the models."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

__all__ = [
    "CrossCompress",
    "CrossStitch",
    "DCNCross",
    "Dense",
    "entity_inputs",
    "gather_rows",
    "glorot_embedding",
    "id_keep_mask",
    "sparse_matmul",
    "to_csr",
    "trained_items",
]


class _GatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(idx)
        ctx.n = table.shape[0]
        return table.index_select(0, idx.reshape(-1)).reshape(*idx.shape, table.shape[1])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (idx,) = ctx.saved_tensors
        out = grad.new_zeros(ctx.n, grad.shape[-1])
        out.index_add_(0, idx.reshape(-1), grad.reshape(-1, grad.shape[-1]))
        return out, None


def gather_rows(table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``table[idx]`` (shape ``(*idx.shape, dim)``) with a dense gradient by one
    ``index_add_``: the same values and gradient as :func:`torch.nn.functional.embedding`,
    ~8x faster backward on CPU for the skip-gram batches of M2GRL (its
    ``embedding_dense_backward`` sorts the indices)."""
    return _GatherRows.apply(table, idx)


class _SparseMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: torch.Tensor, a_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.a_t = a_t
        return a @ x

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return None, None, ctx.a_t @ grad


def to_csr(a: torch.Tensor) -> torch.Tensor:
    """A sparse COO (or CSR) matrix in CSR form, for :func:`sparse_matmul`."""
    if a.layout == torch.sparse_csr:
        return a
    with warnings.catch_warnings():  # torch calls its CSR support "beta"; the product is tested
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support")
        return a.coalesce().to_sparse_csr()


def sparse_matmul(a: torch.Tensor, x: torch.Tensor, a_t: torch.Tensor | None = None
                  ) -> torch.Tensor:
    """``a @ x`` for a constant sparse ``a`` (CSR, see :func:`to_csr`) and a dense ``x``
    that needs a gradient: the backward is one more product with ``a_t`` (``a``'s transpose
    in CSR; omit it when ``a`` is symmetric). The same values and gradient as
    :func:`torch.sparse.mm` on COO, ~3.5x faster forward + backward on CPU for LightGCN's
    propagation (COO's backward transposes and coalesces ``a`` on every call)."""
    return _SparseMatmul.apply(a, a if a_t is None else a_t, x)


def trained_items(train: np.ndarray | None, n_items: int) -> np.ndarray:
    """``(n_items,)`` bool: the items with a positive in the labelled training rows
    ``(user, item, label)`` (all True where the caller has no such rows)."""
    if train is None:
        return np.ones(n_items, dtype=bool)
    train = np.asarray(train, dtype=np.int64).reshape(-1, 3)
    return np.bincount(train[train[:, 2] == 1, 1], minlength=n_items)[:n_items] > 0


def id_keep_mask(items: torch.Tensor, seen: torch.Tensor, p: float,
                 training: bool) -> torch.Tensor:
    """``(*items.shape, 1)`` float mask on an item's own id vector, for cold start as in
    DropoutNet (Volkovs et al., NeurIPS'17): in training each row's id vector is dropped with
    probability ``p`` (the model learns to place an item from its content, here its KG
    neighbours); at inference it is dropped for the items never trained on (``seen`` False),
    whose id vectors are untrained noise."""
    keep = seen[items]
    if training and p > 0:
        keep = keep & (torch.rand(items.shape, device=items.device) >= p)
    return keep.unsqueeze(-1).to(torch.float32)


def glorot_embedding(n: int, dim: int) -> nn.Parameter:
    """An ``(n, dim)`` embedding table with Glorot-uniform init, TensorFlow's default for
    ``tf.get_variable`` (what MKR's embeddings start from: small when ``n`` is large)."""
    w = torch.empty(n, dim)
    nn.init.xavier_uniform_(w)
    return nn.Parameter(w)


class Dense(nn.Module):
    """``act(x W + b)`` with a Glorot-uniform ``W`` and zero ``b`` (MKR's ``Dense`` layer)."""

    def __init__(
        self,
        *,
        in_dim: int,
        out_dim: int,
        act: Callable[[torch.Tensor], torch.Tensor] | None = torch.relu,
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_dim, out_dim))
        nn.init.xavier_uniform_(self.weight)
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.addmm(self.bias, x, self.weight)
        return self.act(y) if self.act is not None else y


class CrossCompress(nn.Module):
    """Cross & compress unit of MKR (Wang et al., WWW'19, eq. 1-2).

    Cross: ``C = v e^T`` (d x d). Compress::

        v' = C w_VV + C^T w_EV + b_V
        e' = C w_VE + C^T w_EE + b_E

    Since ``C w = v (e . w)`` and ``C^T w = e (v . w)``, the unit is computed in O(d) per row
    without forming ``C`` (same numbers as the matrix form; see the tests).
    """

    def __init__(self, *, dim: int):
        super().__init__()
        self.dim = dim
        # columns: w_VV, w_VE, w_EV, w_EE (each Glorot-uniform over a (d, 1) shape, as in MKR)
        self.weight = nn.Parameter(torch.empty(dim, 4))
        bound = (6.0 / (dim + 1)) ** 0.5
        nn.init.uniform_(self.weight, -bound, bound)
        self.bias = nn.Parameter(torch.zeros(2, dim))  # rows: b_V, b_E

    @property
    def w_vv(self) -> torch.Tensor:
        return self.weight[:, 0:1]

    @property
    def w_ve(self) -> torch.Tensor:
        return self.weight[:, 1:2]

    @property
    def w_ev(self) -> torch.Tensor:
        return self.weight[:, 2:3]

    @property
    def w_ee(self) -> torch.Tensor:
        return self.weight[:, 3:4]

    @property
    def b_v(self) -> torch.Tensor:
        return self.bias[0]

    @property
    def b_e(self) -> torch.Tensor:
        return self.bias[1]

    def forward(self, v: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = e @ self.weight[:, :2]  # (b, 2): e.w_VV, e.w_VE
        c = v @ self.weight[:, 2:]  # (b, 2): v.w_EV, v.w_EE
        # row 0: a_0 v + c_0 e + b_V = v';  row 1: a_1 v + c_1 e + b_E = e'
        out = a.unsqueeze(2) * v.unsqueeze(1) + c.unsqueeze(2) * e.unsqueeze(1) + self.bias
        return out[:, 0], out[:, 1]

    def forward_matrix(
        self, v: torch.Tensor, e: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The paper's literal matrix form (for tests and the curious)."""
        c = v.unsqueeze(2) @ e.unsqueeze(1)  # (b, d, d)
        ct = c.transpose(1, 2)
        v_out = (c @ self.w_vv + ct @ self.w_ev).squeeze(2) + self.b_v
        e_out = (c @ self.w_ve + ct @ self.w_ee).squeeze(2) + self.b_e
        return v_out, e_out


class DCNCross(nn.Module):
    """The DCN cross layer ``x_{l+1} = x_0 x_l^T w_l + x_l + b_l`` (Wang et al., ADKDD'17) as
    MKR-DCN's replacement of the cross & compress unit (Wang et al., WWW'19, Sec. 4.2).

    The item and entity features take the roles of each other's ``x_l``: ``v' = v_0 (e . w_V)
    + v + b_V`` and ``e' = e_0 (v . w_E) + e + b_E``, where ``v_0``, ``e_0`` are the layer-0
    inputs. (The paper gives the DCN formula only; this pairing is kgrec's reading of it.)
    """

    def __init__(self, *, dim: int):
        super().__init__()
        self.dim = dim
        self.weight = nn.Parameter(torch.empty(dim, 2))  # columns: w_V, w_E
        bound = (6.0 / (dim + 1)) ** 0.5
        nn.init.uniform_(self.weight, -bound, bound)
        self.bias = nn.Parameter(torch.zeros(2, dim))

    def forward(self, v: torch.Tensor, e: torch.Tensor, v0: torch.Tensor,
                e0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v_new = v0 * (e @ self.weight[:, 0:1]) + v + self.bias[0]
        e_new = e0 * (v @ self.weight[:, 1:2]) + e + self.bias[1]
        return v_new, e_new


class CrossStitch(nn.Module):
    """Cross-stitch unit (Misra et al., CVPR'16) as MKR-stitch's replacement of cross &
    compress: ``[v'; e'] = [[a_VV, a_VE], [a_EV, a_EE]] [v; e]`` with four trainable scalars
    (initialised to 0.9 on the diagonal and 0.1 off it, as in the cross-stitch paper)."""

    def __init__(self, *, dim: int):
        super().__init__()
        self.dim = dim
        self.alpha = nn.Parameter(torch.tensor([[0.9, 0.1], [0.1, 0.9]]))

    def forward(self, v: torch.Tensor, e: torch.Tensor, v0: torch.Tensor | None = None,
                e0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.alpha
        return a[0, 0] * v + a[0, 1] * e, a[1, 0] * v + a[1, 1] * e


def entity_inputs(inputs: dict | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rows, vectors)`` of pre-trained entity vectors handed to a model's ``build``
    (``inputs["entity_rows"]``, ``inputs["entity_vectors"]``; see
    :func:`kgrec.pretrain.model_inputs`); a clear error where they are missing."""
    if not inputs or inputs.get("entity_vectors") is None:
        raise ValueError("entity_init needs the KGE run's vectors as inputs: build the model "
                         "with kgrec.pretrain.build_model (as `kgrec train` does)")
    return (torch.as_tensor(inputs["entity_rows"], dtype=torch.long),
            torch.as_tensor(inputs["entity_vectors"], dtype=torch.float32))
