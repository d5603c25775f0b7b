"""Plain matrix factorisation trained with binary cross-entropy on the CTR rows: the KG-blind
twin of :mod:`kgrec.models.kg.kgmf` (the same network with its KG-neighbour term switched off),
so the pair isolates what the knowledge graph adds (Koren et al., "Matrix factorization
techniques for recommender systems", Computer 2009)."""

from __future__ import annotations

from dataclasses import dataclass

from kgrec.models.kg.kgmf import KGMF, KGMFConfig

__all__ = ["MFConfig", "build"]


@dataclass
class MFConfig:
    """dim: embedding size; lr: Adam learning rate; l2_weight: L2 as Adam weight decay on the
    embeddings; batch_size: rows per step."""

    dim: int = 16
    lr: float = 1e-2
    l2_weight: float = 1e-4
    batch_size: int = 1024


def build(ds, cfg: MFConfig) -> KGMF:
    """Plain MF for a :class:`~kgrec.data.Dataset` (KG-MF without its KG term)."""
    inner = KGMFConfig(dim=cfg.dim, lr=cfg.lr, l2_weight=cfg.l2_weight,
                       batch_size=cfg.batch_size, use_kg=False)
    return KGMF(n_users=ds.n_users, n_items=ds.n_items, n_entities=ds.n_entities,
                n_relations=ds.n_relations, kg=ds.kg, item_entity=ds.item_entity, config=inner)
