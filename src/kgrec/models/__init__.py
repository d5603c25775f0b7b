"""Models, grouped by family: ``kg/`` (MKR, RippleNet, CKE, DKN, KG-MF), ``ctr/`` (FM,
Wide&Deep on pre-trained KG features), ``cf/`` (BPR-MF, item-CF, popularity, MF), ``kge``
(translational and bilinear KG embeddings); ``base`` holds the contract every model honours,
``layers`` the shared building blocks and ``registry`` the one table that names them all.
"""

from kgrec.models.base import Recommender, Task, TrainData
from kgrec.models.registry import (
    ALIASES,
    KGE_SPECS,
    MODELS,
    REGISTRY,
    ModelSpec,
    build_model,
    model_config,
    resolve_name,
)

__all__ = ["ALIASES", "KGE_SPECS", "MODELS", "REGISTRY", "ModelSpec", "Recommender", "Task",
           "TrainData", "build_model", "model_config", "resolve_name"]
