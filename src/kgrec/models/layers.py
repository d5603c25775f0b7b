"""Building blocks shared by the models."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["CrossCompress", "Dense", "glorot_embedding"]


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
