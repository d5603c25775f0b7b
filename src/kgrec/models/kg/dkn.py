"""DKN: Deep Knowledge-aware Network (Wang et al., WWW'18, "DKN: Deep Knowledge-Aware Network
for News Recommendation"), as the MKR paper (Wang et al., WWW'19) runs it as a baseline.

* **KCNN** (knowledge-aware CNN) turns an item's "title" (:func:`kgrec.data.text.item_tokens`:
  MovieLens titles, or KG tokens where no titles exist) into the item vector. Every token
  position has three aligned channels in word space (dimension ``word_dim``): the word
  embedding ``w``, the linked entity's embedding ``g(e)`` and its context embedding ``g(ē)``,
  ``ē`` the mean of the entity's one-hop KG neighbours, with the paper's transformation
  ``g(x) = tanh(M x + b)`` (one ``g`` for both). Filters of widths ``filter_sizes`` (``n_filters``
  each) span the full channel depth (the stacked ``3 x word_dim`` features, i.e. DKN's
  multi-channel 2-D convolution with full-width kernels), ReLU, max-over-time pooling; the
  pooled outputs are concatenated: ``F = n_filters * len(filter_sizes)``.
* **User** = attention of the candidate over the user's clicked items (training positives,
  at most ``max_clicks``, sampled once per run): ``alpha_c = softmax_c(H([v_cand; v_c]))``
  with the paper's DNN ``H`` (one ReLU hidden layer of ``att_hidden`` units, linear output)
  or, with ``attention="dot"``, the authors' released code's inner product; ``u = sum_c
  alpha_c v_c``. Padding clicks are masked out; a user without clicks gets ``u = 0``.
* **Score**: ``predictor="mlp"``, the paper's DNN ``G([u; v_cand])`` (one ReLU hidden layer
  of ``pred_hidden`` units, linear output logit), or ``"dot"``, ``u . v_cand`` (the released
  code, plus a learned scalar bias: the pooled features are ReLU outputs, so ``u . v >= 0``
  and without a bias no CTR could fall below 0.5). Loss: binary cross-entropy; L2
  (``l2_weight``, as coupled Adam weight decay) on the convolution filters and ``M``, where
  the released code puts it, and (``l2_mlp``, default on) on the weights of the DNNs ``H``
  and ``G``, which the released code does not have: on Last.FM that raised the validation
  AUC from 0.786 to 0.809, on MovieLens it changed nothing, and on kgrec's synthetic data it
  held the DNNs at zero (the loss never left ``log 2``), so the synthetic preset turns it
  off.

Entity vectors are pre-trained TransE (``kge``; :func:`kgrec.pretrain.
kge_entity_vectors`, as DKN does) and fine-tuned or frozen (``freeze_entities``); context
vectors start as the neighbour mean of those and train the same way (DKN keeps them as a
separate table). Word vectors start random (DKN uses word2vec on its news corpus; the MKR
datasets have no text corpus to pre-train on).

kgrec's deviations, all recorded here:

* Titles: only MovieLens has them; music, book and synthetic items use KG tokens (the item's
  entity and its neighbours), and title words link to the item's own entity (Satori's
  word-entity links are not available). See :mod:`kgrec.data.text`.
* The candidate is masked out of its own user's clicks (``history != candidate``). Histories
  are drawn from the training positives, so a positive training row would otherwise find
  itself among the clicks and the attention would learn to look it up, a shortcut that no
  test row offers. Validation and test candidates are not training positives (the split
  holds each (user, item) pair once), so there the mask changes nothing.
* Hidden sizes of ``H`` and ``G`` are not given in the paper; ``att_hidden`` and
  ``pred_hidden`` set them. Both first layers are linear in the concatenation, so the MLPs
  are evaluated per item and per click and combined afterwards (the same numbers as the
  literal concatenation; see the tests): full ranking costs ``O(users x items x clicks x
  hidden)`` and never forms a ``(users, items, clicks, F)`` tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kgrec.models.base import Recommender, Task, TrainData

__all__ = ["DKN", "DKNConfig", "build", "masked_softmax"]

_KGE_MODELS = ("transe", "transh", "transr", "transd", "none")
_USER_GROUP = 256  # users per history-length group in score_all


@dataclass
class DKNConfig:
    """Hyper-parameters of DKN (the authors' code: word/entity dim 50, filters 1, 2, 3 with
    128 each, title length 10, 30 clicks, lr 1e-3, batch 128, L2 0.01; kgrec scales the sizes
    down for CPU, see ``config/presets/dkn.toml``).

    Attributes:
        word_dim: word embedding size d (the space every channel is transformed into).
        entity_dim: pre-trained entity (and context) vector size.
        n_filters: convolution filters per window size.
        filter_sizes: window sizes of the filters (each ``<= max_title_length``).
        max_title_length: tokens per item title (longer titles are cut, shorter padded).
        max_clicks: clicked items per user history (DKN's ``max_click_history``).
        use_entities: include the entity channel ``g(e)``.
        use_context: include the context channel ``g(ē)``.
        kge: KG embedding that pre-trains the entity vectors (``transe``, ``transh``,
            ``transr``, ``transd``) or ``none`` (random entity vectors; for ablations/tests).
        kge_epochs: epochs of that pre-training (cached per graph, model, dim and epochs).
        freeze_entities: keep entity and context vectors fixed (else fine-tuned).
        attention: ``mlp`` (the paper's DNN over ``[candidate; clicked]``) or ``dot``.
        att_hidden: hidden units of the attention DNN.
        predictor: ``mlp`` (the paper's DNN over ``[user; candidate]``) or ``dot``.
        pred_hidden: hidden units of the prediction DNN.
        lr: Adam learning rate.
        l2_weight: L2 weight (Adam weight decay) on the convolution filters and the
            transformation ``M`` (DKN's ``l2_loss``); embeddings and biases are not decayed.
        l2_mlp: also decay the attention and prediction DNN weights (see the module
            docstring).
        batch_size: rows per step.
        optimizer: ``adam`` (the authors': L2 coupled into the Adam gradient) or ``adamw``
            (decoupled decay, ``lr * l2_weight * w`` per step). Coupled, the decay dominates
            Adam's normalised step whenever the data gradient is small, which can pull the
            prediction DNN to zero for good (music seed 3: constant output, AUC 0.61).
    """

    word_dim: int = 32
    entity_dim: int = 32
    n_filters: int = 32
    filter_sizes: tuple[int, ...] = (1, 2, 3)
    max_title_length: int = 10
    max_clicks: int = 30
    use_entities: bool = True
    use_context: bool = True
    kge: str = "transe"
    kge_epochs: int = 20
    freeze_entities: bool = False
    attention: str = "mlp"
    att_hidden: int = 16
    predictor: str = "mlp"
    pred_hidden: int = 16
    lr: float = 1e-3
    l2_weight: float = 0.01
    l2_mlp: bool = True
    batch_size: int = 128
    optimizer: str = "adam"

    def __post_init__(self) -> None:
        sizes = self.filter_sizes
        if isinstance(sizes, int):
            sizes = (sizes,)
        self.filter_sizes = tuple(int(s) for s in sizes)
        for name in ("word_dim", "entity_dim", "n_filters", "max_title_length", "max_clicks",
                     "att_hidden", "pred_hidden", "batch_size", "kge_epochs"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"DKN: {name} must be >= 1, got {getattr(self, name)}")
        if not self.filter_sizes or min(self.filter_sizes) < 1:
            raise ValueError(f"DKN: filter_sizes must be positive, got {self.filter_sizes}")
        if max(self.filter_sizes) > self.max_title_length:
            raise ValueError(f"DKN: filter size {max(self.filter_sizes)} exceeds "
                             f"max_title_length={self.max_title_length}")
        if self.optimizer not in ("adam", "adamw"):
            raise ValueError(f"DKN: optimizer must be 'adam' or 'adamw', got {self.optimizer!r}")
        if self.attention not in ("mlp", "dot"):
            raise ValueError(f"DKN: attention must be 'mlp' or 'dot', got {self.attention!r}")
        if self.predictor not in ("mlp", "dot"):
            raise ValueError(f"DKN: predictor must be 'mlp' or 'dot', got {self.predictor!r}")
        if self.kge not in _KGE_MODELS:
            raise ValueError(f"DKN: kge must be one of {', '.join(_KGE_MODELS)}, "
                             f"got {self.kge!r}")
        if self.lr <= 0 or self.l2_weight < 0:
            raise ValueError(f"DKN: need lr > 0 and l2_weight >= 0, got lr={self.lr}, "
                             f"l2_weight={self.l2_weight}")


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis restricted to ``mask``; all-masked rows give zeros."""
    return torch.softmax(logits.masked_fill(~mask, -1e9), -1) * mask


class DKN(Recommender):
    """See the module docstring. Construct with keyword arguments only.

    Args:
        n_users, n_items, n_entities: vocabulary sizes.
        word_ids, entity_ids: ``(n_items, max_title_length)`` token tables of
            :func:`kgrec.data.text.item_tokens` (0 pads; entity ids are entity index + 1).
        n_words: size of the word vocabulary (padding included).
        entity_vectors, context_vectors: ``(n_entities, entity_dim)`` initial entity and
            context vectors (None: random, context = 0).
        config: hyper-parameters.
    """

    def __init__(
        self,
        *,
        n_users: int,
        n_items: int,
        n_entities: int,
        word_ids: np.ndarray,
        entity_ids: np.ndarray,
        n_words: int,
        entity_vectors: np.ndarray | None = None,
        context_vectors: np.ndarray | None = None,
        config: DKNConfig | None = None,
    ):
        super().__init__()
        cfg = config or DKNConfig()
        self.config = cfg
        self.n_users, self.n_items = n_users, n_items
        length = cfg.max_title_length
        word_ids = np.asarray(word_ids, dtype=np.int64)
        entity_ids = np.asarray(entity_ids, dtype=np.int64)
        for name, arr, hi in (("word_ids", word_ids, n_words),
                              ("entity_ids", entity_ids, n_entities + 1)):
            if arr.shape != (n_items, length):
                raise ValueError(f"DKN: {name} has shape {arr.shape}, expected "
                                 f"{(n_items, length)} (n_items, max_title_length)")
            if arr.size and (arr.min() < 0 or arr.max() >= hi):
                raise ValueError(f"DKN: {name} out of range [0, {hi})")
        d, de = cfg.word_dim, cfg.entity_dim
        # title tokens: persistent, so a checkpoint carries the exact item texts it was fit on
        self.register_buffer("word_ids", torch.from_numpy(word_ids), persistent=True)
        self.register_buffer("entity_ids", torch.from_numpy(entity_ids), persistent=True)
        # click histories: filled from TrainData.train in tasks()
        self.register_buffer("history", torch.zeros(n_users, cfg.max_clicks, dtype=torch.long),
                             persistent=True)
        self.register_buffer("history_mask",
                             torch.zeros(n_users, cfg.max_clicks, dtype=torch.bool),
                             persistent=True)

        # random word vectors with E||w||^2 = 1, the scale of the (norm-1) TransE vectors
        self.word_emb = nn.Parameter(torch.randn(n_words, d) / d**0.5)
        for name, vec in (("entity_vectors", entity_vectors),
                          ("context_vectors", context_vectors)):
            if vec is not None and np.shape(vec) != (n_entities, de):
                raise ValueError(f"DKN: {name} has shape {np.shape(vec)}, expected "
                                 f"{(n_entities, de)} (n_entities, entity_dim)")
        ent = torch.zeros(n_entities + 1, de)  # row 0: no entity
        ctx = torch.zeros(n_entities + 1, de)
        if entity_vectors is None:
            ent[1:] = torch.randn(n_entities, de) / de**0.5
        else:
            ent[1:] = torch.as_tensor(np.asarray(entity_vectors, dtype=np.float32))
        if context_vectors is not None:
            ctx[1:] = torch.as_tensor(np.asarray(context_vectors, dtype=np.float32))
        self.entity_emb = nn.Parameter(ent, requires_grad=not cfg.freeze_entities)
        self.context_emb = nn.Parameter(ctx, requires_grad=not cfg.freeze_entities)
        self.transform = nn.Linear(de, d)  # g(x) = tanh(M x + b)
        n_channels = 1 + int(cfg.use_entities) + int(cfg.use_context)
        self.convs = nn.ModuleList(
            nn.Conv1d(n_channels * d, cfg.n_filters, w) for w in cfg.filter_sizes
        )
        self.item_dim = cfg.n_filters * len(cfg.filter_sizes)
        fd = self.item_dim
        if cfg.attention == "mlp":  # H([v_cand; v_click]) = w2 . relu(W1 [v_cand; v_click] + b1)
            self.att_in = nn.Linear(2 * fd, cfg.att_hidden)
            self.att_out = nn.Linear(cfg.att_hidden, 1, bias=False)  # a bias cancels in softmax
        if cfg.predictor == "mlp":  # G([u; v_cand]) = w_o . relu(W [u; v_cand] + b) + b_o
            self.pred_in = nn.Linear(2 * fd, cfg.pred_hidden)
            self.pred_out = nn.Linear(cfg.pred_hidden, 1)
        else:  # u . v_cand + b: pooled ReLU features make u . v >= 0, the bias allows < 0.5
            self.dot_bias = nn.Parameter(torch.zeros(()))

    # ------------------------------------------------------------------ KCNN
    def g(self, x: torch.Tensor) -> torch.Tensor:
        """The entity/context transformation into word space, ``tanh(M x + b)``."""
        return torch.tanh(self.transform(x))

    def kcnn_input(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """``(k, channels * word_dim, max_title_length)``: the aligned channels
        ``[w; g(e); g(ē)]`` per token position, zero at padding (and the entity channels zero
        for a word without an entity)."""
        words = self.word_ids if items is None else self.word_ids[items]
        ents = self.entity_ids if items is None else self.entity_ids[items]
        chans = [self.word_emb[words]]
        has_entity = (ents > 0).unsqueeze(-1)
        if self.config.use_entities:
            chans.append(self.g(self.entity_emb[ents]) * has_entity)
        if self.config.use_context:
            chans.append(self.g(self.context_emb[ents]) * has_entity)
        x = torch.cat(chans, -1) * (words > 0).unsqueeze(-1)
        return x.transpose(1, 2)

    def item_vectors(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """KCNN item vectors ``(k, F)`` (every item when ``items`` is None)."""
        x = self.kcnn_input(items)
        return torch.cat([torch.relu(conv(x)).amax(-1) for conv in self.convs], -1)

    # ------------------------------------------------------------------ attention, score
    def _split(self, layer: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
        fd = self.item_dim
        return layer.weight[:, :fd], layer.weight[:, fd:]

    def _project(self, vec: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-item tables the attention and prediction need, computed once per item set:
        the first layers of ``H`` and ``G`` split into their candidate and click halves."""
        cfg = self.config
        out = {"vec": vec}
        if cfg.attention == "mlp":
            w_cand, w_click = self._split(self.att_in)
            out["att_cand"] = vec @ w_cand.T + self.att_in.bias
            out["att_click"] = vec @ w_click.T
        if cfg.predictor == "mlp":
            w_user, w_cand = self._split(self.pred_in)
            out["pred_user"] = vec @ w_user.T
            out["pred_cand"] = vec @ w_cand.T + self.pred_in.bias
        return out

    def _head(self, proj: dict[str, torch.Tensor], cand: torch.Tensor, clicks: torch.Tensor,
              mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and attention weights.

        Args:
            proj: :meth:`_project` of the ``(k, F)`` item vectors that ``cand`` and ``clicks``
                index.
            cand: ``(B or 1, n)`` candidate rows of ``vec``.
            clicks: ``(B, C)`` clicked rows of ``vec`` per user.
            mask: ``(B, n, C)`` real clicks (and not the candidate itself).

        Returns:
            ``(logits (B, n), alpha (B, n, C))``.
        """
        cfg = self.config
        s = None
        if cfg.attention == "dot" or cfg.predictor == "dot":
            vec = proj["vec"]
            s = vec[cand] @ vec[clicks].transpose(1, 2)  # (B, n, C) v_cand . v_click
        if cfg.attention == "mlp":
            q = proj["att_cand"][cand].unsqueeze(2)  # (B|1, n, 1, H)
            k = proj["att_click"][clicks].unsqueeze(1)  # (B, 1, C, H)
            att = torch.relu_(q + k) @ self.att_out.weight[0]
        else:
            att = s
        alpha = masked_softmax(att, mask)
        if cfg.predictor == "dot":  # u . v = sum_c alpha_c (v_c . v)
            return (alpha * s).sum(-1) + self.dot_bias, alpha
        # W [u; v] = sum_c alpha_c (W_u v_c) + W_v v  (sum_c alpha_c is 1, or 0 for no clicks)
        h = alpha @ proj["pred_user"][clicks] + proj["pred_cand"][cand]
        return torch.relu(h) @ self.pred_out.weight[0] + self.pred_out.bias, alpha

    def _clicks(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Histories of ``users`` and their real-click mask, cut to the longest real history
        among them (real clicks come first in every row)."""
        real = self.history_mask[users]
        width = max(int(real.sum(1).max()), 1) if len(users) else 1
        return self.history[users, :width], real[:, :width]

    def _pairs(self, users: torch.Tensor, items: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        hist, real = self._clicks(users)
        mask = real & (hist != items.unsqueeze(1))
        ids, inv = torch.unique(torch.cat([items, hist.reshape(-1)]), return_inverse=True)
        proj = self._project(self.item_vectors(ids))
        b = len(items)
        return self._head(proj, inv[:b].unsqueeze(1), inv[b:].view(b, -1), mask.unsqueeze(1))

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        if len(users) <= 8192:
            return self._pairs(users, items)[0].squeeze(1)
        # many rows (evaluation): item vectors once, the attention in chunks of rows
        proj = self._project(self.item_vectors())
        out = []
        for u, i in zip(users.split(8192), items.split(8192), strict=True):
            hist, real = self._clicks(u)
            mask = real & (hist != i.unsqueeze(1))
            out.append(self._head(proj, i.unsqueeze(1), hist, mask.unsqueeze(1))[0].squeeze(1))
        return torch.cat(out)

    def attention(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Attention weights ``(b, max_clicks)`` of each candidate over its user's clicks
        (``history[users]``; zero at padding and at the candidate itself)."""
        alpha = self._pairs(users, items)[1].squeeze(1)
        return F.pad(alpha, (0, self.config.max_clicks - alpha.shape[1]))

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """Every item for a block of users: item vectors once; users in groups of similar
        history length (each cut to its longest history), candidates in chunks that bound
        the ``(users, candidates, clicks, hidden)`` attention tensor to ~4M floats."""
        proj = self._project(self.item_vectors())
        cfg = self.config
        width = max(cfg.att_hidden if cfg.attention == "mlp" else 1,
                    cfg.pred_hidden if cfg.predictor == "mlp" else 1)
        items = torch.arange(self.n_items, device=users.device)
        out = torch.empty(len(users), self.n_items, device=users.device)
        order = torch.argsort(self.history_mask[users].sum(1))
        for group in order.split(_USER_GROUP):
            hist, real = self._clicks(users[group])
            chunk = max(1, 2**22 // (len(group) * hist.shape[1] * width))
            for cand in items.split(chunk):
                mask = real.unsqueeze(1) & (hist.unsqueeze(1) != cand.view(1, -1, 1))
                out[group, cand[0]: cand[-1] + 1] = self._head(proj, cand.unsqueeze(0), hist,
                                                               mask)[0]
        return out

    # ------------------------------------------------------------------ training
    def fill_history(self, train: np.ndarray) -> None:
        """Each user's clicks: up to ``max_clicks`` training positives drawn at random
        (torch's generator), stored in the persistent ``history`` buffers."""
        train = np.asarray(train, dtype=np.int64).reshape(-1, 3)
        pos = torch.from_numpy(train[train[:, 2] == 1][:, :2].copy())
        pos = pos[torch.randperm(len(pos))]
        pos = pos[torch.argsort(pos[:, 0], stable=True)]
        users = pos[:, 0]
        starts = torch.searchsorted(users.contiguous(), torch.arange(self.n_users))
        rank = torch.arange(len(users)) - starts[users]
        keep = rank < self.config.max_clicks
        self.history.zero_()
        self.history_mask.zero_()
        self.history[users[keep], rank[keep]] = pos[keep, 1]
        self.history_mask[users[keep], rank[keep]] = True

    def rec_loss(self, batch: torch.Tensor) -> torch.Tensor:
        logits = self.score(batch[:, 0], batch[:, 1])
        return F.binary_cross_entropy_with_logits(logits, batch[:, 2].float())

    def param_groups(self) -> list[dict]:
        """Adam groups: L2 on the convolution filters and ``M`` (and the DNN weights with
        ``l2_mlp``), none on embeddings and biases; frozen entity tables are left out."""
        decay = [self.transform.weight, *(c.weight for c in self.convs)]
        if self.config.l2_mlp:
            for name in ("att_in", "att_out", "pred_in", "pred_out"):
                if hasattr(self, name):
                    decay.append(getattr(self, name).weight)
        ids = {id(p) for p in decay}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        return [{"params": decay, "weight_decay": self.config.l2_weight},
                {"params": rest, "weight_decay": 0.0}]

    def tasks(self, data: TrainData) -> list[Task]:
        self.fill_history(data.train_rows())
        cfg = self.config
        return [Task(name="rec", source=data.rec_rows, loss=self.rec_loss,
                     params=self.param_groups(), lr=cfg.lr, batch_size=cfg.batch_size,
                     optimizer=cfg.optimizer)]


def build(ds, cfg: DKNConfig, inputs: dict | None = None) -> DKN:
    """DKN for a :class:`~kgrec.data.Dataset` from ``inputs`` computed above the model
    (:func:`kgrec.pretrain.model_inputs`: title tokens ``word_ids``/``entity_ids``/``n_words``,
    pre-trained ``entity_vectors`` and their neighbour means ``context_vectors``), or a loaded
    checkpoint's buffers (tokens and ``word_emb``; the vectors come with the state)."""
    inputs = inputs or {}
    if inputs.get("word_ids") is None or inputs.get("entity_ids") is None:
        raise ValueError("DKN takes its title tokens and entity vectors as inputs: build it "
                         "with kgrec.pretrain.build_model (as `kgrec train` does)")
    n_words = (int(inputs["n_words"]) if inputs.get("n_words") is not None
               else len(inputs["word_emb"]))
    return DKN(n_users=ds.n_users, n_items=ds.n_items, n_entities=ds.n_entities,
               word_ids=inputs["word_ids"], entity_ids=inputs["entity_ids"], n_words=n_words,
               entity_vectors=inputs.get("entity_vectors"),
               context_vectors=inputs.get("context_vectors"), config=cfg)
