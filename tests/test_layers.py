import math

import numpy as np
import pytest
import torch

from kgrec.models.layers import CrossCompress, Dense
from kgrec.train.optim import LeanAdam


def _unit_with(w_vv, w_ev, w_ve, w_ee, b_v, b_e):
    unit = CrossCompress(dim=len(w_vv))
    with torch.no_grad():
        unit.weight.copy_(torch.tensor([w_vv, w_ve, w_ev, w_ee], dtype=torch.float32).T)
        unit.bias.copy_(torch.tensor([b_v, b_e], dtype=torch.float32))
    return unit


def test_cross_compress_by_hand():
    # v = [1, 2], e = [3, 4]: C = v e^T = [[3, 4], [6, 8]], C^T = [[3, 6], [4, 8]]
    unit = _unit_with([1, 0], [0, 1], [1, 1], [2, 0], [0.5, -0.5], [0, 1])
    v, e = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 4.0]])
    v_out, e_out = unit(v, e)
    # v' = C w_vv + C^T w_ev + b_v = [3, 6] + [6, 8] + [0.5, -0.5]
    assert torch.allclose(v_out, torch.tensor([[9.5, 13.5]]))
    # e' = C w_ve + C^T w_ee + b_e = [7, 14] + [6, 8] + [0, 1]
    assert torch.allclose(e_out, torch.tensor([[13.0, 23.0]]))


def test_cross_compress_matches_matrix_form_and_shapes():
    torch.manual_seed(0)
    unit = CrossCompress(dim=6)
    with torch.no_grad():
        unit.bias.normal_()
    v, e = torch.randn(5, 6), torch.randn(5, 6)
    a, b = unit(v, e)
    a2, b2 = unit.forward_matrix(v, e)
    assert a.shape == b.shape == (5, 6)
    assert torch.allclose(a, a2, atol=1e-5) and torch.allclose(b, b2, atol=1e-5)


def test_cross_compress_gradients():
    torch.manual_seed(0)
    unit = CrossCompress(dim=3).double()
    v = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    e = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v, e: unit(v, e), (v, e))
    out = sum(x.sum() for x in unit(v, e))
    out.backward()
    assert unit.weight.grad is not None and unit.bias.grad is not None
    assert torch.isfinite(unit.weight.grad).all()


def test_dense_relu_and_linear():
    layer = Dense(in_dim=2, out_dim=1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        layer.bias.fill_(0.5)
    x = torch.tensor([[1.0, 3.0], [3.0, 1.0]])
    assert torch.allclose(layer(x), torch.tensor([[0.0], [2.5]]))
    lin = Dense(in_dim=2, out_dim=1, act=None)
    with torch.no_grad():
        lin.weight.copy_(layer.weight)
        lin.bias.fill_(0.5)
    assert torch.allclose(lin(x), torch.tensor([[-1.5], [2.5]]))


def test_lean_adam_matches_torch_adam():
    torch.manual_seed(0)
    p1 = [torch.nn.Parameter(torch.randn(5, 3)) for _ in range(3)]
    p2 = [torch.nn.Parameter(p.detach().clone()) for p in p1]
    def groups(ps):
        return [{"params": ps[:2]}, {"params": ps[2:], "weight_decay": 0.1}]
    o1 = torch.optim.Adam(groups(p1), lr=0.01)
    o2 = LeanAdam(groups(p2), lr=0.01)
    for step in range(25):
        for ps, opt in ((p1, o1), (p2, o2)):
            for p in ps:
                p.grad = None
            loss = (ps[0] ** 2).sum() + (ps[2] ** 3).sum()
            if step % 3 == 0:  # ps[1] gets a gradient only every third step
                loss = loss + ps[1].sum()
            loss.backward()
            opt.step()
    for a, b in zip(p1, p2, strict=False):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), atol=1e-6)


def test_uncertainty_weights_and_weighted_sum_by_hand():
    from kgrec.models.losses import UncertaintyWeights, weighted_sum

    w = UncertaintyWeights(["a", "b"])
    with torch.no_grad():
        w.log_var.copy_(torch.tensor([0.0, math.log(4.0)]))
    losses = {"a": torch.tensor(2.0), "b": torch.tensor(8.0)}
    # 0.5 * e^0 * 2 + 0 + 0.5 * (1/4) * 8 + 0.5 * log 4
    total = w(losses)
    assert total.item() == pytest.approx(1.0 + 1.0 + 0.5 * math.log(4.0))
    assert w.weights() == pytest.approx({"a": 0.5, "b": 0.125})
    total.backward()  # d/ds_b = -0.5 e^-s L_b + 0.5 = -1 + 0.5
    assert w.log_var.grad.tolist() == pytest.approx([-0.5, -0.5])
    assert float(weighted_sum(losses, {"b": 0.1})) == pytest.approx(2.0 + 0.8)
    with pytest.raises(ValueError):
        weighted_sum({})


def test_trained_items_and_id_keep_mask() -> None:
    from kgrec.models.layers import id_keep_mask, trained_items

    train = np.array([[0, 1, 1], [1, 1, 1], [0, 2, 0], [2, 4, 1]])  # item 2: a negative only
    seen = trained_items(train, 5)
    assert seen.tolist() == [False, True, False, False, True]
    assert trained_items(None, 3).tolist() == [True, True, True]
    seen_t = torch.from_numpy(seen)
    items = torch.tensor([0, 1, 2, 4])
    # inference: the never-trained items lose their own vector, whatever p
    for p in (0.0, 0.5):
        keep = id_keep_mask(items, seen_t, p, training=False)
        assert keep.shape == (4, 1) and keep[:, 0].tolist() == [0.0, 1.0, 0.0, 1.0]
    # training: dropped with probability p (seen items only ever kept when not dropped)
    torch.manual_seed(0)
    many = torch.ones(20000, dtype=torch.long)
    kept = id_keep_mask(many, seen_t, 0.3, training=True).mean().item()
    assert abs(kept - 0.7) < 0.02
    assert id_keep_mask(many, seen_t, 0.0, training=True).mean().item() == 1.0


def test_sparse_matmul_matches_dense_values_and_gradient() -> None:
    from kgrec.models.layers import sparse_matmul, to_csr

    g = torch.Generator().manual_seed(0)
    rows = torch.tensor([0, 0, 1, 2, 3, 3, 4])
    cols = torch.tensor([1, 4, 2, 0, 3, 1, 4])
    vals = torch.rand(7, generator=g)
    coo = torch.sparse_coo_tensor(torch.stack([rows, cols]), vals, (5, 5),
                                  check_invariants=True).coalesce()
    dense = coo.to_dense()
    x = torch.randn(5, 3, generator=g, requires_grad=True)
    w = torch.randn(5, 3, generator=g)
    # not symmetric: the backward needs the transpose
    out = sparse_matmul(to_csr(coo), x, to_csr(coo.t()))
    (out * w).sum().backward()
    assert torch.allclose(out, dense @ x.detach(), atol=1e-6)
    assert torch.allclose(x.grad, dense.T @ w, atol=1e-6)
    # symmetric: a_t omitted
    sym = (coo + coo.t()).coalesce()
    x.grad = None
    (sparse_matmul(to_csr(sym), x) * w).sum().backward()
    assert torch.allclose(x.grad, sym.to_dense() @ w, atol=1e-6)
    assert to_csr(to_csr(coo)).layout == torch.sparse_csr
