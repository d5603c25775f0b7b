"""The one registry of every model, of every family.

A model named ``-m NAME`` lives in ``kgrec.models.<family>.<NAME with - as _>`` (a config
dataclass and ``build(dataset, config) -> Recommender``) and reads its presets from
``kgrec/config/presets/NAME.toml``. Variants (``mkr-1l``, ``mkr-dcn`` ...) are a base model's
module and preset with some config fields fixed. The registry names modules lazily, so
importing it stays cheap and a model's code is imported only when it is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # importing the registry must stay free of torch (`kgrec models`)
    from kgrec.data.dataset import Dataset
    from kgrec.models.base import Recommender

__all__ = ["ALIASES", "KGE_SPECS", "MODELS", "REGISTRY", "ModelSpec", "build_model",
           "is_variant", "model_config", "resolve_name"]


@dataclass(frozen=True)
class ModelSpec:
    """A registered model.

    Attributes:
        module: ``kgrec.models.<module>`` (``<family>.<name>``) holds the config class and
            ``build``.
        config: name of the config dataclass in that module.
        preset: ``kgrec/config/presets/<preset>.toml``, the per-dataset hyper-parameters
            (the ``-m`` name; a variant's base model's).
        description: one line for ``kgrec models``.
        fixed: config fields forced for this name (variants and ablations of a model).
        family: ``kg`` (uses the knowledge graph), ``cf`` (interactions only), ``seq``
            (encodes the item history: sequential recall), ``retrieval`` (feature towers
            for ANN retrieval; the KG as features where there is one) or ``kge``.
    """

    module: str
    config: str
    preset: str
    description: str
    fixed: dict[str, Any] = field(default_factory=dict)
    family: str = "kg"

    def _module(self):
        return importlib.import_module(f"kgrec.models.{self.module}")

    @property
    def config_class(self) -> type:
        return getattr(self._module(), self.config)

    @property
    def builder(self) -> Callable[[Dataset, Any], Recommender]:
        return self._module().build


MODELS: dict[str, ModelSpec] = {
    "mkr": ModelSpec("kg.mkr", "MKRConfig", "mkr",
                     "MKR, cross & compress + alternating KGE (Wang et al., WWW'19)"),
    "mkr-1l": ModelSpec("kg.mkr", "MKRConfig", "mkr", "MKR with one cross & compress layer",
                        {"L": 1}),
    "mkr-dcn": ModelSpec("kg.mkr", "MKRConfig", "mkr",
                         "MKR with DCN cross layers in place of cross & compress",
                         {"unit": "dcn", "analytic_grad": False}),
    "mkr-stitch": ModelSpec("kg.mkr", "MKRConfig", "mkr",
                            "MKR with cross-stitch units (four scalars) in place of c&c",
                            {"unit": "stitch", "analytic_grad": False}),
    "mkr-nokg": ModelSpec("kg.mkr", "MKRConfig", "mkr",
                          "MKR with the KGE task switched off (ablation)", {"kge_interval": 0},
                          family="cf"),
    "ripplenet": ModelSpec("kg.ripplenet", "RippleNetConfig", "ripplenet",
                           "RippleNet, preference propagation over ripple sets (CIKM'18)"),
    "cke": ModelSpec("kg.cke", "CKEConfig", "cke",
                     "CKE, MF + TransR structural embeddings, joint (KDD'16)"),
    "dkn": ModelSpec("kg.dkn", "DKNConfig", "dkn",
                     "DKN, knowledge-aware CNN over item text + entities (WWW'18)"),
    "kgmf": ModelSpec("kg.kgmf", "KGMFConfig", "kgmf",
                      "MF + mean of KG neighbours (KG-aware reference)"),
    "fm": ModelSpec("ctr.fm", "FMConfig", "fm",
                    "LibFM-style FM on user, item + pre-trained TransR entity features"),
    "wide-deep": ModelSpec("ctr.wide_deep", "WideDeepConfig", "wide-deep",
                           "Wide&Deep on user, item + pre-trained TransR entity features"),
    "bpr-mf": ModelSpec("cf.bpr_mf", "BPRConfig", "bpr-mf",
                        "BPR-MF, pairwise ranking MF (UAI'09)", family="cf"),
    "kgcn": ModelSpec("kg.kgcn", "KGCNConfig", "kgcn",
                      "KGCN, user-weighted aggregation over sampled KG neighbours (WWW'19)"),
    "kgat": ModelSpec("kg.kgat", "KGATConfig", "kgat",
                      "KGAT, attentive propagation on the user-item + KG graph (KDD'19)"),
    "kgin": ModelSpec("kg.kgin", "KGINConfig", "kgin",
                      "KGIN, user intents over KG relation paths (WWW'21)"),
    "lightgcn": ModelSpec("cf.lightgcn", "LightGCNConfig", "lightgcn",
                          "LightGCN, linear propagation on the user-item graph + BPR (SIGIR'20)",
                          family="cf"),
    "item-cf": ModelSpec("cf.item_cf", "ItemCFConfig", "item-cf",
                         "item-based CF, adjusted cosine with shrinkage (WWW'01)",
                         family="cf"),
    "pop": ModelSpec("cf.pop", "PopularityConfig", "pop",
                     "most popular items (the floor of every table)", family="cf"),
    "mf": ModelSpec("cf.mf", "MFConfig", "mf", "plain MF, BCE (KG-blind twin of kgmf)",
                    family="cf"),
    "youtubednn": ModelSpec("sequential.youtubednn", "YouTubeDNNConfig", "youtubednn",
                            "YouTubeDNN, mean-pooled history + MLP (RecSys'16)", family="seq"),
    "gru4rec": ModelSpec("sequential.gru4rec", "GRU4RecConfig", "gru4rec",
                         "GRU4Rec, GRU over the history, CE over all items (ICLR'16)",
                         family="seq"),
    "sasrec": ModelSpec("sequential.sasrec", "SASRecConfig", "sasrec",
                        "SASRec, causal self-attention (ICDM'18)", family="seq"),
    "mind": ModelSpec("sequential.mind", "MINDConfig", "mind",
                      "MIND, multi-interest dynamic routing (CIKM'19)", family="seq"),
    "comirec-dr": ModelSpec("sequential.comirec_dr", "ComiRecDRConfig", "comirec-dr",
                            "ComiRec-DR, multi-interest dynamic routing (KDD'20)", family="seq"),
    "comirec-sa": ModelSpec("sequential.comirec_sa", "ComiRecSAConfig", "comirec-sa",
                            "ComiRec-SA, multi-interest self-attention (KDD'20)", family="seq"),
    "m2grl": ModelSpec("graph.m2grl", "M2GRLConfig", "m2grl",
                       "M2GRL, multi-view walks + skip-gram, uncertainty-weighted (KDD'20)",
                       family="retrieval"),
    "item2vec": ModelSpec("graph.m2grl", "M2GRLConfig", "m2grl",
                          "item2vec / DeepWalk on the item co-occurrence graph alone",
                          {"views": "item", "inter_view": False}, family="retrieval"),
    "eges": ModelSpec("graph.m2grl", "M2GRLConfig", "m2grl",
                      "EGES, item walks + skip-gram with weighted side information (KDD'18)",
                      {"views": "item", "inter_view": False, "side_info": "category,kg"},
                      family="retrieval"),
    "m2grl-div": ModelSpec("graph.m2grl", "M2GRLConfig", "m2grl",
                           "M2GRL + diversity-matching metric model over its views",
                           {"diversity": True}, family="retrieval"),
    "two-tower": ModelSpec("towers.two_tower", "TwoTowerConfig", "two-tower",
                           "two-tower, in-batch softmax + log-Q + SSL item tower (CIKM'21)",
                           family="retrieval"),
}


#: the KG embedding models (family ``kge``): trained by ``kgrec kge train``, built by
#: :func:`kgrec.models.kge.build_kge`; listed here so one table names every model.
KGE_SPECS: dict[str, ModelSpec] = {
    name: ModelSpec("kge", "KGEConfig", name, text, family="kge")
    for name, text in (
        ("transe", "TransE, h + r = t (Bordes et al., NIPS'13)"),
        ("transh", "TransH, translation on relation hyperplanes (Wang et al., AAAI'14)"),
        ("transr", "TransR, relation-specific spaces (Lin et al., AAAI'15)"),
        ("transd", "TransD, dynamic mapping matrices (Ji et al., ACL'15)"),
        ("bilinear", "bilinear semantic matching, h^T M_r t (RESCAL-style, Nickel et al.)"),
        ("distmult", "DistMult, diagonal bilinear (Yang et al., ICLR'15)"),
    )
}

#: every model of every family, by ``-m`` name
REGISTRY: dict[str, ModelSpec] = {**MODELS, **KGE_SPECS}

#: other names users type for a model
ALIASES: dict[str, str] = {"popularity": "pop"}


def model_config(name: str, params: dict[str, Any]) -> Any:
    """The model's config dataclass from ``params`` (strings from ``--set`` are converted to
    each field's type, ranges checked; see :func:`kgrec.config.coerce.build_config`);
    unknown keys fail with the valid ones."""
    from kgrec.config.coerce import build_config

    spec = MODELS[resolve_name(name)]
    return build_config(spec.config_class, {**params, **spec.fixed}, owner=f"model {name!r}")


def resolve_name(name: str) -> str:
    """The registry name of ``name`` (an alias such as ``pop`` gives ``popularity``)."""
    name = ALIASES.get(name, name)
    if name in KGE_SPECS:
        raise KeyError(f"{name!r} is a KG embedding model: train it with "
                       f"`kgrec kge train -m {name}` (or use it inside MKR: "
                       f"--set kge_scorer={name})")
    if name not in MODELS:
        known = sorted([*MODELS, *ALIASES])
        raise KeyError(f"unknown model {name!r}; known: {', '.join(known)} "
                       "(KG embeddings: `kgrec kge models`)")
    return name


def is_variant(name: str) -> bool:
    """True for a variant (``mkr-dcn``) that shares its base model's preset file: the base's
    tuned values (``[<dataset>.tuned]``) are not its own."""
    name = resolve_name(name)
    return MODELS[name].preset != name


def build_model(name: str, dataset: Dataset, config: Any,
                inputs: dict[str, Any] | None = None) -> Recommender:
    """Instantiate model ``name`` for ``dataset`` with a config from :func:`model_config`.

    ``inputs``: arrays computed above the models (:func:`kgrec.pretrain.model_inputs`:
    pre-trained KG features, title tokens ...), passed to the models whose ``build`` takes
    them (an ``inputs`` parameter) and ignored by the others."""
    import inspect

    builder = MODELS[resolve_name(name)].builder
    if inputs and "inputs" in inspect.signature(builder).parameters:
        return builder(dataset, config, inputs=inputs)
    return builder(dataset, config)
