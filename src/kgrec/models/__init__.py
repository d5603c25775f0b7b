"""Models, grouped by family: ``kg/`` (MKR, RippleNet, CKE, DKN, KG-MF), ``ctr/`` (FM,
Wide&Deep on pre-trained KG features), ``cf/`` (BPR-MF, item-CF, popularity, MF), ``kge``
(translational and bilinear KG embeddings); ``base`` holds the contract every model honours,
``layers`` the shared building blocks and ``registry`` the one table that names them all.
"""

from typing import TYPE_CHECKING, Any

from kgrec.models.registry import (
    ALIASES,
    KGE_SPECS,
    MODELS,
    REGISTRY,
    ModelSpec,
    build_model,
    is_variant,
    model_config,
    resolve_name,
)

__all__ = ["ALIASES", "KGE_SPECS", "MODELS", "REGISTRY", "ModelSpec", "Recommender", "Task",
           "TrainData", "build_model", "is_variant", "model_config", "resolve_name"]

if TYPE_CHECKING:
    from kgrec.models.base import Recommender, Task, TrainData


def __getattr__(name: str) -> Any:
    """The contract classes, imported on first use: the registry alone needs no torch."""
    if name in ("Recommender", "Task", "TrainData"):
        from kgrec.models import base

        return getattr(base, name)
    raise AttributeError(f"module 'kgrec.models' has no attribute {name!r}")
