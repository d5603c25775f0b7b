"""Peer figures for kgrec's ``two-tower`` retrieval model on exactly kgrec's ``loo`` split.

Two peers, each trained with its own code on kgrec's training positives of ``movie-half`` and
scored by kgrec's evaluation code on kgrec's queries: **torch-rechub** (0.9.0 when this was
written) DSSM and YoutubeSBC with its ``MatchTrainer``, and **LibRecommender** (1.5.2)
``TwoTower``, in LibRecommender's own environment (see ``LibRec-TwoTower`` below).

* **Split.** ``kgrec.experiments.run.prepare_data(RunConfig(dataset="movie-half",
  protocol="loo", seed=S))``: the split ``kgrec train`` uses (leave-one-out by time: last
  event test, second-last validation, full ranking over all items, history masked).
* **Training samples** as torch-rechub's ``generate_seq_feature_match`` builds them: every
  training event of a user but the first, oldest first; the user's history is the up to 20
  training items before the event (``gen_model_input(..., seq_max_len=20)``: most recent kept,
  pre-padded with 0). Ids are kgrec's + 1 (0 is torch-rechub's padding).
* **Features.** User tower: ``user_id``, ``gender``, ``age``, ``occupation`` (sparse) and
  ``hist_item_id`` (sequence, mean pooling, sharing the ``item_id`` table; ``padding_idx=0``
  so the padding is masked out of the mean, which the examples leave unset). Item tower:
  ``item_id``, ``genre`` (the item's first genre, as the examples' ``cate_id``) and ``year``
  (sparse). Every embedding 64-d (torch-rechub's default init N(0, 1e-4)); towers MLP
  [256, 128, 64] with BatchNorm (torch-rechub's ``MLP``), so user / item vectors are 64-d.
* **Models** (one per ``--models`` entry; batch 1024, Adam lr 1e-3, weight decay 1e-6):

  - ``DSSM``: ``MatchTrainer(model, mode=0, in_batch_neg=True)``: torch-rechub's in-batch
    mode: logits ``u_i . v_j`` over all 1023 other pairs of the batch (its default
    ``in_batch_neg_ratio``), softmax cross-entropy on the diagonal. DSSM L2-normalises both
    towers, so the logits are cosines; torch-rechub 0.9.0's in-batch path does not apply
    ``temperature`` (0.02 passed as the example does). No log-Q, no accidental-hit mask.
    PReLU towers (the DSSM example's "important!!" setting).
  - ``DSSM-pointwise``: the setup of ``examples/matching/run_ml_dssm.py``: ``mode=0``, BCE on
    ``sigmoid(cos(u, v))`` (DSSM's forward; its ``/ temperature`` is commented out), 3
    negatives per positive drawn once by ``negative_sample(method_id=1)`` (popularity^0.75
    over the training events), so 4 rows per training sample. Not in the default run.
  - ``YoutubeSBC``: the setup of ``examples/matching/run_ml_youtube_sbc.py``: ``mode=2``
    (softmax cross-entropy), ``YoutubeSBC(..., batch_size=1024, n_neg=3, temperature=0.02)``:
    logits ``cos(u_i, v_j) / 0.02 - log q_j / 0.02`` over the positive and the next
    ``n_neg`` pairs' items of the batch (cyclically), ``q_j`` the example's
    ``get_item_sample_weight``: ``count_j^0.75 / sum count^0.75`` over the training events,
    fed as a ``DenseFeature``. ReLU towers (the model's default). ``--sbc-n-neg 1023`` gives
    the full in-batch softmax of Yi et al. One change to torch-rechub's code, for speed
    only: the batch's cosine matrix as a matrix product (:func:`sbc_matmul_class`; the stock
    ``torch.cosine_similarity`` broadcast costs about 7-8 s per batch of 1024 on one thread,
    40 min an epoch); each run measures both on its first batch and records the difference.
  - ``LibRec-TwoTower``: LibRecommender's ``TwoTower`` (TensorFlow 1 graph), in-batch softmax
    over the whole batch with its sampling-bias correction (``use_correction=True``: ``log``
    of the click share subtracted after the temperature), accidental hits removed,
    ``norm_embed=True``, temperature 0.05 (``--librec-temperature``), 64-d embeddings of
    user_id, gender, age, occupation / item_id, first genre, year, MLP [256, 128, 64] with
    BatchNorm; no history in its user tower (it has none). It needs tensorflow < 2.16 and so
    numpy < 2: it runs in a separate interpreter (``--librec-python``, default
    ``/tmp/librec-venv/bin/python``) that executes this file's :func:`librec_worker` on the
    training events and writes the user / item vectors of every epoch; scored here by
    kgrec's code (the fixed user vector, the history unused). Epoch selection by the same
    validation rule, applied after the fact.

* **Evaluation** by kgrec's definitions: the trained towers are wrapped in a
  :class:`kgrec.models.base.Recommender` whose ``score_queries(users, history)`` runs the user
  tower on the query's user features and the last 20 items of the query's history
  (``Queries.history``) and returns the cosine with every item's vector (DSSM's vectors are
  normalised; YoutubeSBC trains on cosines and serves without the log-Q term, as the paper);
  :func:`kgrec.eval.ranking.evaluate_ranking` ranks all items, history masked, K = 10, 20, 50.
  The epoch is picked by validation ``ndcg@10`` (kgrec's default monitor), early stop after
  ``--patience`` epochs without a better one, and the best epoch tested once.

Seconds per epoch are ``MatchTrainer.train_one_epoch`` only (LibRecommender: its trainer's
``run`` for one epoch), no evaluation, one torch / TensorFlow thread, no DataLoader workers.

Run it in the peers' environments (see benchmarks/results/peers_two_tower.md for how they
are built)::

    KGREC_DATA=/work/shared/datasets OMP_NUM_THREADS=1 \\
        /tmp/peers-venv/bin/python benchmarks/peers_two_tower.py
    # a smoke test: one epoch each on 20000 samples, results elsewhere
    /tmp/peers-venv/bin/python benchmarks/peers_two_tower.py --epochs 1 \\
        --max-samples 20000 --out /tmp/peers_tt_smoke
    # more seeds, longer, the point-wise DSSM example too (about an hour a seed at 20 epochs)
    /tmp/peers-venv/bin/python benchmarks/peers_two_tower.py --seeds 0 1 2 --epochs 20 \\
        --models DSSM DSSM-pointwise YoutubeSBC LibRec-TwoTower
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")  # torch-rechub's per-batch progress bars

import argparse
import contextlib
import copy
import json
import platform
import shlex
import sys
import tempfile
import time
from collections import OrderedDict
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import numpy as np
from _cli import epoch_timings, peer_md_head


def librec_worker(spec_path: str) -> None:
    """LibRecommender's ``TwoTower``, run in LibRecommender's own environment (TensorFlow 1
    API, numpy < 2: it cannot share kgrec's). Reads the training events and features from
    ``spec["data"]`` (kgrec ids), trains one epoch per ``fit`` call and after each writes
    ``epoch_<e>.npz`` into ``spec["out"]``: user vectors (kgrec user order), item vectors
    (kgrec item order, zero rows for items without a training event, ``item_seen`` False)
    and the training seconds of the epoch. Imports nothing of kgrec."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import pandas as pd
    from libreco.algorithms import TwoTower
    from libreco.data import DatasetFeat
    from libreco.training.dispatch import get_trainer

    spec = json.loads(Path(spec_path).read_text())
    d = np.load(spec["data"])
    out = Path(spec["out"])
    cfg = spec["config"]
    user, item = d["user"], d["item"]
    cols = {"user": user, "item": item, "label": np.ones(len(user), dtype=np.float32)}
    cols |= {f: d[f"user_{f}"][user] for f in spec["user_fields"]}
    cols |= {f: d[f"item_{f}"][item] for f in spec["item_fields"]}
    fields = [*spec["user_fields"], *spec["item_fields"]]
    train, info = DatasetFeat.build_trainset(
        pd.DataFrame(cols), user_col=spec["user_fields"], item_col=spec["item_fields"],
        sparse_col=fields, dense_col=[], shuffle=False, seed=spec["seed"])
    model = TwoTower("ranking", info, n_epochs=1, seed=spec["seed"],
                     tf_sess_config={"intra_op_parallelism_threads": 1,
                                     "inter_op_parallelism_threads": 1,
                                     "allow_soft_placement": True,
                                     "device_count": {"CPU": 1}}, **cfg)
    model.build_model()
    model.model_built = True
    model.trainer = get_trainer(model)
    seconds: list[float] = []
    run = model.trainer.run

    def timed_run(*a, **k):
        t, c = time.perf_counter(), time.process_time()
        run(*a, **k)
        seconds.append((time.perf_counter() - t, time.process_time() - c))

    model.trainer.run = timed_run
    n_users, n_items = int(spec["n_users"]), int(spec["n_items"])
    oov_user = info.n_users  # LibRecommender's out-of-vocabulary row
    uidx = np.array([info.user2id.get(u, oov_user) for u in range(n_users)])
    items_lib = np.asarray(info.item_unique_vals).astype(np.int64)  # internal i -> kgrec id
    for epoch in range(int(spec["epochs"])):
        # Each fit call seeds torch with model.seed for its DataLoader's shuffle (and for
        # nothing else once the graph is built, with the softmax loss): a new seed per
        # epoch, or every epoch would see the batches in the same order.
        model.seed = int(spec["seed"]) * 1000 + epoch
        model.fit(train, neg_sampling=True, verbose=0, shuffle=True)
        model.set_embeddings()  # fit refreshes them only the first time
        emb = np.asarray(model.user_embeds_np)
        emb = np.vstack([emb[:oov_user], np.zeros((1, emb.shape[1]), emb.dtype)])
        ue = emb[uidx]  # a user without a training event (smoke tests only): zeros
        ie_lib = np.asarray(model.item_embeds_np)[:len(items_lib)]
        ie = np.zeros((n_items, ie_lib.shape[1]), dtype=np.float32)
        ie[items_lib] = ie_lib
        seen = np.zeros(n_items, dtype=bool)
        seen[items_lib] = True
        wall, cpu = seconds[-1]
        np.savez(out / f"epoch_{epoch}.npz", user_vecs=ue.astype(np.float32), item_vecs=ie,
                 item_seen=seen, seconds=wall, cpu_seconds=cpu)
        print(json.dumps({"epoch": epoch, "seconds": round(wall, 2)}), flush=True)
    versions = {}
    for p in ("LibRecommender", "tensorflow-cpu", "tensorflow", "numpy", "pandas", "torch"):
        with contextlib.suppress(Exception):  # not installed under that name
            versions[p] = version(p)
    versions["python"] = platform.python_version()
    (out / "versions.json").write_text(json.dumps(versions))


if __name__ == "__main__" and sys.argv[1:2] == ["--librec-worker"]:
    librec_worker(sys.argv[2])
    sys.exit(0)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from kgrec.eval.ranking import evaluate_ranking  # noqa: E402
from kgrec.experiments.run import RunConfig, prepare_data  # noqa: E402
from kgrec.models.base import Recommender  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
KS = (10, 20, 50)
MODELS = ("DSSM", "DSSM-pointwise", "YoutubeSBC", "LibRec-TwoTower")
DEFAULT_MODELS = ("DSSM", "YoutubeSBC", "LibRec-TwoTower")
LIBREC_PYTHON = "/tmp/librec-venv/bin/python"
PEER = {"DSSM": "torch-rechub", "DSSM-pointwise": "torch-rechub", "YoutubeSBC": "torch-rechub",
        "LibRec-TwoTower": "LibRecommender"}
USER_FIELDS = ("gender", "age", "occupation")
ITEM_FIELDS = ("genre", "year")  # first value of each
REPORTED = ("recall@50", "ndcg@50", "recall@20", "ndcg@20", "recall@10", "ndcg@10",
            "hr@50", "hr@20")


def log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", flush=True)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 otherwise
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------- data
def train_samples(split, max_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """torch-rechub's ``generate_seq_feature_match`` + ``gen_model_input`` on kgrec's training
    sequences: every training event but a user's first; ``(user, target, hist)`` with ids + 1
    and ``hist (N, max_len)`` the preceding items, most recent kept, pre-padded with 0."""
    indptr, items = split.train_sequences
    counts = np.diff(indptr)
    pos = np.arange(len(items)) - np.repeat(indptr[:-1], counts)
    user = np.repeat(np.arange(len(counts)), counts)
    j = np.flatnonzero(pos >= 1)
    lens = np.minimum(pos[j], max_len)
    k = np.arange(max_len)
    ok = k[None, :] >= (max_len - lens)[:, None]  # right-aligned
    src = j[:, None] - max_len + k[None, :]
    hist = np.where(ok, items[np.where(ok, src, 0)] + 1, 0)
    return user[j].astype(np.int64), (items[j] + 1).astype(np.int64), hist.astype(np.int64)


def first_values(table, name: str) -> np.ndarray:
    """First value id of field ``name`` per row, + 1 (0: none)."""
    return table.padded(name, 1)[:, 0] + 1


class TowerScorer(Recommender):
    """A trained torch-rechub two-tower model as a kgrec recommender: ``score_queries`` runs
    the user tower on the query's user features and last ``max_len`` history items and
    returns the cosine with every item vector (computed once by :meth:`refresh_items`)."""

    uses_history = True

    def __init__(self, model, user_tab: dict[str, np.ndarray], item_tab: dict[str, np.ndarray],
                 n_users: int, n_items: int, max_len: int):
        super().__init__()
        self.model = model
        self.n_users, self.n_items, self.max_len = n_users, n_items, max_len
        self.user_tab = {k: torch.from_numpy(v) for k, v in user_tab.items()}
        self.item_x = {k: torch.from_numpy(v) for k, v in item_tab.items()}
        self.register_buffer("item_vecs", torch.zeros(n_items, 1), persistent=False)

    @torch.no_grad()
    def refresh_items(self) -> None:
        was = self.model.training
        self.model.eval()
        self.model.mode = "item"
        try:
            self.item_vecs = F.normalize(self.model(self.item_x), dim=1)
        finally:
            self.model.mode = None
            self.model.train(was)

    def score_queries(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        h = history[:, -self.max_len:]
        x = {k: v[users] for k, v in self.user_tab.items()}
        x["user_id"] = users + 1
        x["hist_item_id"] = torch.where(h >= 0, h + 1, torch.zeros_like(h))
        self.model.mode = "user"
        try:
            u = F.normalize(self.model(x), dim=1)
        finally:
            self.model.mode = None
        return u @ self.item_vecs.T


def sbc_matmul_class():
    """torch-rechub's ``YoutubeSBC`` with one change: the ``(B, B)`` cosine matrix is
    ``normalize(u) @ normalize(v).T`` instead of ``torch.cosine_similarity(u.unsqueeze(1), v,
    dim=2)``, which materialises a ``(B, B, d)`` tensor (1024 x 1024 x 64 floats; about 7 s
    of backward per batch on one thread, about 0.02 s this way). Same values up to float
    rounding (checked on a batch of every run: ``stock_check`` in the JSON). The rest of the
    forward is the 0.9.0 code line for line, its in-place index bug on the last batch
    included."""
    from torch_rechub.models.matching import YoutubeSBC

    class YoutubeSBCMatmul(YoutubeSBC):
        def forward(self, x):
            user_embedding = self.user_tower(x)
            item_embedding = self.item_tower(x)
            if self.mode == "user":
                return user_embedding
            if self.mode == "item":
                return item_embedding
            pred = F.normalize(user_embedding, dim=1, eps=1e-8) @ F.normalize(
                item_embedding, dim=1, eps=1e-8).T  # (batch_size, batch_size)
            sample_weight = self.embedding(x, self.sample_weight_feature,
                                           squeeze_dim=True).squeeze(1)
            scores = pred - torch.log(sample_weight)
            if user_embedding.shape[0] * (self.n_neg + 1) != self.index0.shape[0]:
                batch_size = user_embedding.shape[0]
                index0 = self.index0[:batch_size * (self.n_neg + 1)]
                index1 = self.index1[:batch_size * (self.n_neg + 1)]
                index0[np.where(index0 >= batch_size)] -= batch_size
                index1[np.where(index1 >= batch_size)] -= batch_size
                scores = scores[index0, index1]
            else:
                scores = scores[self.index0, self.index1]
            scores = scores / self.temperature
            return scores.view(-1, self.n_neg + 1)

    return YoutubeSBCMatmul


def sbc_stock_check(model, x_train: dict, batch_size: int) -> dict:
    """On a copy of ``model`` (train mode, the first ``batch_size`` training rows): seconds of
    one forward + backward of torch-rechub's stock ``YoutubeSBC.forward`` and of the matmul
    one, and the largest difference of their logits."""
    from torch_rechub.models.matching import YoutubeSBC

    m = copy.deepcopy(model).train()
    x = {k: torch.as_tensor(v[:batch_size]) for k, v in x_train.items()}
    out = {}
    for name, fwd in (("stock", YoutubeSBC.forward), ("matmul", type(m).forward)):
        m.zero_grad()
        t = time.perf_counter()
        s = fwd(m, x)
        torch.nn.functional.cross_entropy(s, torch.zeros(len(s), dtype=torch.long)).backward()
        out[f"{name}_seconds_per_batch"] = time.perf_counter() - t
        out[name] = s.detach()
    diff = (out.pop("stock") - out.pop("matmul")).abs().max().item()
    return out | {"max_abs_logit_diff": diff, "batch_size": len(x["item_id"])}


# --------------------------------------------------------------------------- one run
def run_model(name: str, ds, split, seed: int, args) -> dict:
    from torch_rechub.basic.features import DenseFeature, SequenceFeature, SparseFeature
    from torch_rechub.models.matching import DSSM
    from torch_rechub.trainers import MatchTrainer
    from torch_rechub.utils.data import MatchDataGenerator
    from torch_rechub.utils.match import negative_sample

    torch.set_num_threads(1)
    np.random.seed(seed)  # negative_sample draws from numpy's global generator
    torch.manual_seed(seed)
    L, D, B = args.max_len, 64, args.batch_size
    n_users, n_items = ds.n_users, ds.n_items
    t0 = time.perf_counter()
    user, target, hist = train_samples(split, L)
    if args.max_samples:  # smoke tests only: a seeded subset of the samples
        keep = np.sort(np.random.default_rng(seed).permutation(len(target))[:args.max_samples])
        user, target, hist = user[keep], target[keep], hist[keep]
    user_tab = {f: first_values(ds.user_features, f) for f in USER_FIELDS}
    item_tab = {f: first_values(ds.item_features, f) for f in ITEM_FIELDS}
    item_tab["item_id"] = np.arange(1, n_items + 1, dtype=np.int64)
    # item counts over the training events (all of them, as the examples count the data)
    counts = np.bincount(split.train_sequences[1] + 1, minlength=n_items + 1)

    def rows(u, t, h):
        x = {"user_id": u + 1, **{f: user_tab[f][u] for f in USER_FIELDS}, "hist_item_id": h,
             "item_id": t, **{f: item_tab[f][t - 1] for f in ITEM_FIELDS}}
        return x

    x_train = rows(user, target, hist)
    y_train = np.zeros(len(target), dtype=np.int64)  # in-batch / list-wise: a placeholder
    n_neg_pointwise = 3
    if name == "DSSM-pointwise":  # run_ml_dssm.py: mode 0, neg_ratio 3, sample_method 1
        cnt = {int(i): int(counts[i]) for i in np.flatnonzero(counts)}
        order = OrderedDict(sorted(cnt.items(), key=lambda x: x[1], reverse=True))
        neg = np.asarray(negative_sample(order, ratio=len(target) * n_neg_pointwise,
                                         method_id=1)).astype(np.int64)
        rep = np.repeat(np.arange(len(target)), n_neg_pointwise)
        x_train = rows(np.concatenate([user, user[rep]]), np.concatenate([target, neg]),
                       np.concatenate([hist, hist[rep]]))
        y_train = np.concatenate([np.ones(len(target)), np.zeros(len(neg))]).astype(np.float32)
    if name == "YoutubeSBC":  # run_ml_youtube_sbc.py's get_item_sample_weight
        p = counts.astype(np.float64) ** 0.75
        q = p / p.sum()
        x_train["sample_weight"] = q[x_train["item_id"]].astype(np.float32)
    prep = time.perf_counter() - t0

    user_features = [SparseFeature("user_id", vocab_size=n_users + 1, embed_dim=D)]
    user_features += [SparseFeature(f, vocab_size=int(user_tab[f].max()) + 1, embed_dim=D)
                      for f in USER_FIELDS]
    user_features += [SequenceFeature("hist_item_id", vocab_size=n_items + 1, embed_dim=D,
                                      pooling="mean", shared_with="item_id", padding_idx=0)]
    item_features = [SparseFeature("item_id", vocab_size=n_items + 1, embed_dim=D)]
    item_features += [SparseFeature(f, vocab_size=int(item_tab[f].max()) + 1, embed_dim=D)
                      for f in ITEM_FIELDS]
    dims = [256, 128, 64]
    opt = {"lr": args.lr, "weight_decay": 1e-6}
    work = Path(tempfile.mkdtemp(prefix="rechub-", dir=args.workroot))
    if name in ("DSSM", "DSSM-pointwise"):
        model = DSSM(user_features, item_features, temperature=0.02,
                     user_params={"dims": dims, "activation": "prelu"},
                     item_params={"dims": dims, "activation": "prelu"})
        if name == "DSSM":
            trainer = MatchTrainer(model, mode=0, in_batch_neg=True, in_batch_neg_ratio=None,
                                   sampler_seed=seed, optimizer_params=opt, device="cpu",
                                   model_path=str(work))
        else:
            trainer = MatchTrainer(model, mode=0, optimizer_params=opt, device="cpu",
                                   model_path=str(work))
    elif name == "YoutubeSBC":
        model = sbc_matmul_class()(user_features, item_features, [DenseFeature("sample_weight")],
                           user_params={"dims": dims}, item_params={"dims": dims},
                           batch_size=B, n_neg=args.sbc_n_neg, temperature=0.02)
        trainer = MatchTrainer(model, mode=2, optimizer_params=opt, device="cpu",
                               model_path=str(work))
    else:
        raise ValueError(name)
    stock_check = None
    if name == "YoutubeSBC":
        stock_check = sbc_stock_check(model, x_train, B)
        log(f"  YoutubeSBC stock forward+backward {stock_check['stock_seconds_per_batch']:.2f}"
            f" s/batch, matmul {stock_check['matmul_seconds_per_batch']:.3f}; max logit diff "
            f"{stock_check['max_abs_logit_diff']:.2e}")
    dg = MatchDataGenerator(x=x_train, y=y_train)
    train_dl, _, _ = dg.generate_dataloader({"item_id": np.zeros(1)}, {"item_id": np.zeros(1)},
                                            batch_size=B, num_workers=0)
    scorer = TowerScorer(model, user_tab, {k: v for k, v in item_tab.items()}, n_users,
                         n_items, L)

    def evaluate(queries) -> dict:
        scorer.refresh_items()
        m = evaluate_ranking(scorer, queries, n_items=n_items, ks=KS)
        return {k: float(v) for k, v in m.items() if not k.startswith("precision")}

    train_s, train_cpu, losses, valid_curve, valid_s = [], [], [], [], []
    best, best_epoch, best_state, bad = -1.0, -1, None, 0
    for epoch in range(args.epochs):
        model.mode = None
        t, c = time.perf_counter(), time.process_time()
        loss = trainer.train_one_epoch(train_dl)
        train_s.append(time.perf_counter() - t)
        train_cpu.append(time.process_time() - c)
        losses.append(float(loss))
        t = time.perf_counter()
        v = evaluate(split.valid_queries)
        valid_s.append(time.perf_counter() - t)
        valid_curve.append(v["ndcg@10"])
        log(f"  {name} s{seed} epoch {epoch}: train {train_s[-1]:.1f}s loss {loss:.4f} valid "
            f"ndcg@10 {v['ndcg@10']:.4f} recall@50 {v['recall@50']:.4f} ({valid_s[-1]:.1f}s)")
        if not np.isfinite(loss):
            log(f"  {name}: non-finite loss, stopping")
            break
        if v["ndcg@10"] > best:
            best, best_epoch, bad = v["ndcg@10"], epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad += 1
            if bad >= args.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    test = evaluate(split.test_queries)
    valid = evaluate(split.valid_queries)
    for f in work.iterdir():
        f.unlink()
    work.rmdir()
    cfg = {"batch_size": B, "lr": args.lr, "weight_decay": 1e-6, "embed_dim": D,
           "tower_dims": dims, "max_len": L, "n_train_samples": len(target),
           "n_train_rows": len(y_train), "user_features": ["user_id", *USER_FIELDS,
                                                                  "hist_item_id (mean)"],
           "item_features": ["item_id", "genre (first)", "year"]}
    if name == "DSSM":
        cfg |= {"trainer": "MatchTrainer(mode=0, in_batch_neg=True, in_batch_neg_ratio=None)",
                "negatives": f"all {B - 1} other items of the batch", "loss": "softmax CE",
                "logits": "cosine (temperature not applied by torch-rechub 0.9.0)",
                "activation": "prelu"}
    elif name == "DSSM-pointwise":
        cfg |= {"trainer": "MatchTrainer(mode=0)", "negatives": (
            f"{n_neg_pointwise} per positive, negative_sample(method_id=1), drawn once"),
            "loss": "BCE on sigmoid(cosine)", "activation": "prelu"}
    else:
        cfg |= {"trainer": "MatchTrainer(mode=2)", "negatives": (
            f"the next {args.sbc_n_neg} pairs' items of the batch (cyclic)"),
            "loss": "softmax CE, logits (cos - log q) / 0.02",
            "q": "count^0.75 / sum (examples' get_item_sample_weight)", "temperature": 0.02,
            "n_neg": args.sbc_n_neg, "activation": "relu"}
    return {
        "peer": "torch-rechub", "model": name, "dataset": args.dataset, "protocol": "loo",
        "seed": seed, "config": cfg,
        "kgrec_eval": test, "valid_at_best": valid,
        "valid_ndcg10_curve": valid_curve, "train_loss_curve": losses,
        "epoch_cap": args.epochs, "patience": args.patience, "epochs_run": len(train_s),
        "best_epoch": best_epoch,
        **epoch_timings(train_s, train_cpu, valid_s, prep),
        "history_masked": bool(split.test_queries.mask_history),
        "stock_check": stock_check,
    }


# --------------------------------------------------------------------------- LibRecommender
class VectorScorer(Recommender):
    """Fixed user and item vectors as a kgrec recommender (the history is not used): the
    score is their inner product; items without a vector score ``-inf``."""

    def __init__(self, user_vecs: np.ndarray, item_vecs: np.ndarray, item_seen: np.ndarray):
        super().__init__()
        self.n_users, self.n_items = len(user_vecs), len(item_vecs)
        self.register_buffer("u", torch.from_numpy(np.asarray(user_vecs, np.float32)))
        self.register_buffer("v", torch.from_numpy(np.asarray(item_vecs, np.float32)))
        self.register_buffer("dead", ~torch.from_numpy(np.asarray(item_seen, bool)))

    def score_queries(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        return (self.u[users] @ self.v.T).masked_fill(self.dead, float("-inf"))


def librec_config(args) -> dict:
    return {"loss_type": "softmax", "embed_size": 64, "norm_embed": True, "lr": args.lr,
            "batch_size": args.batch_size, "use_bn": True, "dropout_rate": None, "reg": None,
            "hidden_units": [256, 128, 64], "use_correction": True,
            "temperature": args.librec_temperature, "remove_accidental_hits": True,
            "ssl_pattern": None}


def run_librec(name: str, ds, split, seed: int, args) -> dict:
    """Train LibRecommender's ``TwoTower`` in its own interpreter (``--librec-python``), then
    pick the epoch by kgrec's validation ndcg@10 and test it."""
    import subprocess

    n_users, n_items = ds.n_users, ds.n_items
    work = Path(tempfile.mkdtemp(prefix="librec-", dir=args.workroot))
    t0 = time.perf_counter()
    train = split.train
    if args.max_samples:
        keep = np.sort(np.random.default_rng(seed).permutation(len(train))[:args.max_samples])
        train = train[keep]
    arrays = {"user": train[:, 0].astype(np.int64), "item": train[:, 1].astype(np.int64)}
    arrays |= {f"user_{f}": first_values(ds.user_features, f) for f in USER_FIELDS}
    arrays |= {f"item_{f}": first_values(ds.item_features, f) for f in ITEM_FIELDS}
    np.savez(work / "data.npz", **arrays)
    cfg = librec_config(args)
    spec = {"data": str(work / "data.npz"), "out": str(work), "config": cfg, "seed": seed,
            "epochs": args.epochs, "n_users": n_users, "n_items": n_items,
            "user_fields": list(USER_FIELDS), "item_fields": list(ITEM_FIELDS)}
    (work / "spec.json").write_text(json.dumps(spec))
    prep = time.perf_counter() - t0
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONWARNINGS="ignore")
    t = time.perf_counter()
    proc = subprocess.run([args.librec_python, str(Path(__file__).resolve()), "--librec-worker",
                           str(work / "spec.json")], env=env, capture_output=True, text=True,
                          check=False)
    worker_wall = time.perf_counter() - t
    (work / "worker.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"LibRecommender worker failed (rc {proc.returncode}):\n"
                           + (proc.stdout + proc.stderr)[-3000:])
    lib_versions = json.loads((work / "versions.json").read_text())

    def scorer_of(epoch: int) -> tuple[VectorScorer, float, float]:
        z = np.load(work / f"epoch_{epoch}.npz")
        return (VectorScorer(z["user_vecs"], z["item_vecs"], z["item_seen"]),
                float(z["seconds"]), float(z["cpu_seconds"]))

    def evaluate(model, queries) -> dict:
        m = evaluate_ranking(model, queries, n_items=n_items, ks=KS)
        return {k: float(v) for k, v in m.items() if not k.startswith("precision")}

    train_s, train_cpu, valid_curve, valid_s = [], [], [], []
    best, best_epoch, bad = -1.0, -1, 0
    for epoch in range(args.epochs):  # early stopping applied after the fact
        model, sec, cpu = scorer_of(epoch)
        train_s.append(sec)
        train_cpu.append(cpu)
        t = time.perf_counter()
        v = evaluate(model, split.valid_queries)
        valid_s.append(time.perf_counter() - t)
        valid_curve.append(v["ndcg@10"])
        log(f"  {name} s{seed} epoch {epoch}: train {sec:.1f}s valid ndcg@10 {v['ndcg@10']:.4f} "
            f"recall@50 {v['recall@50']:.4f}")
        if v["ndcg@10"] > best:
            best, best_epoch, bad = v["ndcg@10"], epoch, 0
        else:
            bad += 1
            if bad >= args.patience:
                break
    model, _, _ = scorer_of(best_epoch)
    test = evaluate(model, split.test_queries)
    valid = evaluate(model, split.valid_queries)
    unseen = int((~np.load(work / f"epoch_{best_epoch}.npz")["item_seen"]).sum())
    for f in sorted(work.iterdir()):
        f.unlink()
    work.rmdir()
    return {
        "peer": "LibRecommender", "model": name, "dataset": args.dataset, "protocol": "loo",
        "seed": seed,
        "config": cfg | {"trainer": "TwoTower.fit(neg_sampling=True), one epoch per call",
                         "negatives": f"all {args.batch_size - 1} other items of the batch",
                         "loss": "softmax CE, logits cos / T - log q, accidental hits masked",
                         "q": "click share of the item (count / n training events)",
                         "user_features": ["user_id", *USER_FIELDS],
                         "item_features": ["item_id", "genre (first)", "year"],
                         "n_train_rows": len(train)},
        "peer_versions": lib_versions,
        "kgrec_eval": test, "valid_at_best": valid,
        "valid_ndcg10_curve": valid_curve, "train_loss_curve": None,
        "epoch_cap": args.epochs, "patience": args.patience,
        "epochs_trained": args.epochs,
        "epochs_run": len(valid_curve), "best_epoch": best_epoch,
        "train_seconds_per_epoch": float(np.mean(train_s)),
        "train_cpu_seconds_per_epoch": float(np.mean(train_cpu)),
        "train_seconds_each": [round(x, 2) for x in train_s],
        "valid_seconds_per_epoch": float(np.mean(valid_s)),
        "worker_wall_seconds": worker_wall, "data_prep_seconds": prep,
        "items_without_vector": unseen,
        "history_masked": bool(split.test_queries.mask_history),
    }


# --------------------------------------------------------------------------- report
def _f(x, nd=4) -> str:
    return "—" if x is None else f"{x:.{nd}f}"


SETUP = {
    "DSSM": (
        "torch-rechub `DSSM` (L2-normalised towers, MLP [256, 128, 64] with BatchNorm and "
        "PReLU as its example) trained by `MatchTrainer(mode=0, in_batch_neg=True)`, "
        "torch-rechub's in-batch mode: for each of the 1024 (user, item) pairs of a batch the "
        "logits are the inner products of the user vector with all 1024 item vectors of the "
        "batch (the 1023 others are negatives, `in_batch_neg_ratio=None`), softmax "
        "cross-entropy on the pair's own item. Both towers are L2-normalised, so the logits "
        "are cosines in [-1, 1]: torch-rechub 0.9.0's in-batch path ignores the model's "
        "`temperature` (0.02 passed as the example). No log-Q correction, no mask for "
        "accidental hits (a repeated item in the batch is a negative of the other pair)."),
    "DSSM-pointwise": (
        "torch-rechub `DSSM` exactly as `examples/matching/run_ml_dssm.py` trains it: "
        "`MatchTrainer(mode=0)`, binary cross-entropy on `sigmoid(cos(u, v))` (the model's "
        "`/ temperature` is commented out in 0.9.0), each training sample with 3 negatives "
        "drawn once from popularity^0.75 (`negative_sample(method_id=1)`), 4 rows per sample "
        "(the example's lr is 1e-4 and batch 4096; here lr 1e-3, batch 1024)."),
    "YoutubeSBC": (
        "torch-rechub `YoutubeSBC` as `examples/matching/run_ml_youtube_sbc.py`: "
        "`MatchTrainer(mode=2)` (softmax cross-entropy), the logit of user i and item j is "
        "`(cos(u_i, v_j) - log q_j) / 0.02` with `q_j = count_j^0.75 / sum_k count_k^0.75` "
        "over the training events (the example's `get_item_sample_weight`, passed as a "
        "`DenseFeature`), over the pair's own item and the items of the next `n_neg` pairs "
        "of the batch, cyclically (not the whole batch). Towers MLP [256, 128, 64] with "
        "BatchNorm and ReLU (the model's default activation; the example's dims are "
        "[128, 64, 16] with 16-d embeddings), not normalised in the model: the loss uses "
        "cosines and so does the serving score here (no log-Q at serving, as Yi et al.). "
        "torch-rechub divides `log q_j` by the temperature too (Yi et al. subtract it from "
        "the already scaled logit), so the correction weighs 50x the paper's. One change to "
        "its code, for speed only: the (B, B) cosine matrix is computed as "
        "`normalize(u) @ normalize(v).T` instead of `torch.cosine_similarity(u.unsqueeze(1), "
        "v, dim=2)`, which builds a 1024 x 1024 x 64 tensor; same logits up to float "
        "rounding (measured below on the first batch of the run: stock vs this)."),
    "LibRec-TwoTower": (
        "LibRecommender `TwoTower` (TensorFlow 1 graph; Yi et al.'s in-batch softmax with "
        "sampling-bias correction): user tower = user_id, gender, age, occupation embeddings "
        "(no history: the model has none), item tower = item_id, first genre, year; 64-d "
        "embeddings, MLP [256, 128, 64] with BatchNorm (its `use_bn=True` default), "
        "`norm_embed=True` (its docs recommend it); `loss_type='softmax'`: logits "
        "`cos(u_i, v_j) / T - log q_j` over all 1024 items of the batch, `q_j` the item's "
        "click share in the training events (`use_correction=True`, its default), "
        "`remove_accidental_hits=True` (off by default), T = 0.05 (kgrec's; LibRecommender "
        "defaults to 1.0 and calls 0.05-0.5 typical; no example of it sets one), its Adam "
        "(epsilon 1e-5), lr 1e-3, batch 1024, no self-supervised loss (`ssl_pattern=None`). "
        "Trained on every training event (it takes (user, item) rows), one `fit` call per "
        "epoch in LibRecommender's own environment, vectors exported after each epoch. "
        "Serving: the fixed user vector (the query's history is not used) against every "
        "item's; items without a training event have no vector and score -inf."),
}


def summary(rs: list[dict]) -> dict:
    out = {}
    for k in REPORTED:
        v = np.array([r["kgrec_eval"][k] for r in rs])
        out[k] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else None}
    s = np.array([r["train_seconds_per_epoch"] for r in rs])
    out["train_seconds_per_epoch"] = {"mean": float(s.mean()),
                                      "std": float(s.std(ddof=1)) if len(s) > 1 else None}
    return out


def write_md(payload: dict, path: Path) -> None:
    d = payload["data"]
    lines = [
        *peer_md_head("Peer figures for kgrec's two-tower retrieval (torch-rechub, "
                      "LibRecommender)", payload),
        f"Data: `{d['dataset']}`, protocol `loo` (leave-one-out by time, all "
        f"{d['n_items']} items ranked, history masked), {d['n_users']} users, "
        f"{d['n_train']} training positives, {d['n_test_queries']} test / "
        f"{d['n_valid_queries']} validation queries; data checksum `{d['checksum']}`; "
        f"seeds {', '.join(map(str, payload['seeds']))}.",
        "",
        "Budget (stated caps, not tuned): " + payload["budget"],
        "",
        "Figures: test metrics by kgrec's definitions (`kgrec.eval.ranking.evaluate_ranking` "
        "on the split's `test_queries`) at the epoch with the best validation ndcg@10. "
        "s/epoch: training only (`MatchTrainer.train_one_epoch`; LibRecommender: its "
        "trainer's `run` for one epoch), wall clock, CPU seconds of the process in brackets, "
        "one torch thread (LibRecommender: TensorFlow intra- and inter-op threads 1, yet its "
        "process used about 1.2 CPU seconds per second), on a 2-core machine shared with "
        "other jobs (load averages 2.7 to 5 during the run, per run in the JSON): slower "
        "than on an idle machine.",
        "",
    ]
    for m in payload["models"]:
        rs = [r for r in payload["runs"] if r["model"] == m and "error" not in r]
        errs = [r for r in payload["runs"] if r["model"] == m and "error" in r]
        lines += [f"## {PEER[m]} {m}", "", SETUP[m], ""]
        if rs:
            lines += [
                "| seed | recall@50 | ndcg@50 | recall@20 | ndcg@20 | recall@10 | ndcg@10 "
                "| s/epoch (CPU s) | epochs run / cap | best epoch | valid ndcg@10 |",
                "|---|---|---|---|---|---|---|---|---|---|---|",
            ]
            for r in rs:
                k = r["kgrec_eval"]
                lines.append(
                    f"| {r['seed']} | {_f(k['recall@50'])} | {_f(k['ndcg@50'])} "
                    f"| {_f(k['recall@20'])} | {_f(k['ndcg@20'])} | {_f(k['recall@10'])} "
                    f"| {_f(k['ndcg@10'])} | {r['train_seconds_per_epoch']:.1f} "
                    f"({r['train_cpu_seconds_per_epoch']:.1f}) | {r['epochs_run']} / "
                    f"{r['epoch_cap']} | {r['best_epoch']} | {_f(r['valid_at_best']['ndcg@10'])} |")
            if len(rs) > 1:
                s = payload["summary"][m]

                def cell(k: str, s: dict = s) -> str:
                    return f"{s[k]['mean']:.4f} ± {s[k]['std']:.4f}"

                lines.append(
                    f"| mean ± sd | {cell('recall@50')} | {cell('ndcg@50')} "
                    f"| {cell('recall@20')} | {cell('ndcg@20')} | {cell('recall@10')} "
                    f"| {cell('ndcg@10')} | {s['train_seconds_per_epoch']['mean']:.1f} "
                    "| | | |")
            lines.append("")
            curves = "; ".join(
                f"seed {r['seed']}: " + ", ".join(f"{v:.4f}" for v in r["valid_ndcg10_curve"])
                for r in rs)
            lines += [f"Validation ndcg@10 by epoch: {curves}.", ""]
            for r in rs:
                c = r.get("stock_check")
                if c:
                    minutes = (c["stock_seconds_per_batch"] * r["config"]["n_train_rows"]
                               / c["batch_size"] / 60)
                    lines += [
                        f"Stock `YoutubeSBC.forward` vs the matmul one (seed {r['seed']}, one "
                        f"batch of {c['batch_size']}, forward + backward): "
                        f"{c['stock_seconds_per_batch']:.2f} s vs "
                        f"{c['matmul_seconds_per_batch']:.3f} s, largest logit difference "
                        f"{c['max_abs_logit_diff']:.1e} (logits are cosines x 50). At the stock "
                        "speed an epoch would take about "
                        f"{minutes:.0f} min.", ""]
            pv = {k: v for r in rs for k, v in (r.get("peer_versions") or {}).items()}
            if pv:
                lines += ["Its environment: " + ", ".join(f"{k} {v}" for k, v in pv.items())
                          + ".", ""]
        for r in errs:
            lines += [f"Failed (seed {r['seed']}): `{r['error']}`", ""]
    lines += ["## Common setup and differences from kgrec's protocol", ""]
    lines += [f"- {n}" for n in payload["notes"]] + [""]
    lines += ["## Environment", "", payload["environment"], ""]
    write_atomic(path, "\n".join(lines))


NOTES = [
    "Split: exactly kgrec's: `prepare_data(RunConfig(dataset='movie-half', protocol='loo', "
    "seed=S))` in this script, the same call `kgrec train` makes; test and validation "
    "queries are kgrec's `Queries` objects, scored by kgrec's `evaluate_ranking` (full "
    "ranking over every item, the query's whole history masked, duplicate targets once).",
    "Training samples follow torch-rechub's `generate_seq_feature_match`: each training "
    "event but a user's first (kgrec's two-tower also trains on the first, with an empty "
    "history), history = the up to 20 training items before it (pre-padded with 0, most "
    "recent kept, `gen_model_input`'s defaults). Each sample is seen once per epoch, "
    "shuffled by torch-rechub's DataLoader.",
    "User tower: user_id, gender, age, occupation, mean of the history items' `item_id` "
    "embeddings (shared table). The examples' `zip` is not in kgrec's data. The examples "
    "leave `padding_idx` unset, so their mean pooling averages the padding id 0's "
    "embedding in; here `padding_idx=0` masks it (a torch-rechub option).",
    "Item tower: item_id, first genre (the examples' `cate_id`), year. kgrec's two-tower "
    "also has all genres, title tokens and KG relation fields; this peer has only the "
    "features the brief asked for.",
    "Query time: the user tower sees the query's user id and demographics and the last 20 "
    "items of the query's history (for test queries that includes the validation item), "
    "the score is the cosine of the user and item vectors, and kgrec masks the history.",
    "Epoch selection by validation ndcg@10 on kgrec's validation queries (torch-rechub's "
    "own `fit` can only early-stop on AUC of labelled rows); the best epoch's weights are "
    "tested once.",
    "torch-rechub 0.9.0 quirks met here: (1) `MatchTrainer`'s in-batch mode ignores the "
    "model's temperature (cosine logits in [-1, 1] for DSSM); (2) its in-batch sampler "
    "draws each row's negatives with a Python loop of one `randperm` per row (counted in "
    "s/epoch); (3) `YoutubeSBC` uses only `n_neg` cyclic neighbours of the batch as "
    "negatives, and on the smaller last batch of an epoch it subtracts the batch size from "
    "a *view* of its stored index array, permanently changing which neighbours some rows "
    "get in later full batches (the positive is untouched); (4) `generate_dataloader` "
    "defaults to 8 DataLoader workers (0 here); (5) DSSM's forward has `/ temperature` "
    "commented out, so the point-wise example trains `sigmoid(cosine)`.",
    "LibRecommender 1.5.2 quirks met here: its TwoTower is TensorFlow-1 code (needs "
    "tensorflow < 2.16, hence numpy < 2, hence its own environment apart from kgrec's) and it "
    "imports torch and scikit-learn without declaring them; `fit` refreshes the exported "
    "vectors only on its first call (the script calls `set_embeddings` after each epoch), "
    "and every `fit` call reseeds torch with `model.seed` for its DataLoader's shuffle (the "
    "script sets `model.seed = 1000 * seed + epoch` before each call, so that epochs see "
    "different orders as in one multi-epoch `fit`; the graph's own seed is set once, at "
    "build). Its user tower has no history; the script picks its epoch after the fact by "
    "the same validation rule (epochs after an early stop are trained but never looked at).",
    "Budget: 10 epochs each. The validation curves were still near their best in the last "
    "epochs (best epochs 6, 8 and 8 of 0-9 in the seed-0 run), so longer runs may gain a "
    "little; at the measured speeds 30 epochs take about 30 min (DSSM), 15 min "
    "(YoutubeSBC) and 12 min (LibRecommender) on this machine.",
    "Reading the figures: LibRecommender's TwoTower (whole-batch softmax, temperature 0.05, "
    "log-Q subtracted after the temperature, accidental hits removed) is well ahead of both "
    "torch-rechub models although its user tower has no history. The torch-rechub setups "
    "are what their examples and trainer give: DSSM's in-batch softmax runs at temperature "
    "1 on cosines (a nearly flat softmax over 1024 items: its loss only fell from 6.93 = "
    "log 1024 to 6.37), YoutubeSBC contrasts each positive with only 3 in-batch items and "
    "scales its log-Q term by 1/0.02. These are figures of the peers as shipped, not of "
    "the best each library could do with changes to its code.",
    "YoutubeSBC's `q` is the example's count^0.75 share, not the click share (count^1) "
    "that is the in-batch sampling probability of Yi et al.; kgrec's two-tower uses the "
    "click share (or a streaming estimate), over the whole batch, with accidental hits "
    "masked, temperature 0.05.",
]

ENVIRONMENT = (
    "torch-rechub: `python3.11 -m venv /tmp/peers-venv --system-site-packages` (reuses "
    "the system torch 2.13.0+cpu, numpy, pandas, scikit-learn and kgrec, installed "
    "editable), then `/tmp/peers-venv/bin/pip install -c constraints.txt "
    "torch-rechub==0.9.0` (it added setuptools 84.2.1 to the venv and nothing else). "
    "LibRecommender (TensorFlow 1 API, numpy < 2, so not the same environment): "
    "`python3.11 -m venv /tmp/librec-venv`, then `/tmp/librec-venv/bin/pip install "
    "tensorflow-cpu==2.15.1 'numpy<2' LibRecommender==1.5.2 'pandas<2.2' "
    "scikit-learn` and `/tmp/librec-venv/bin/pip install -c constraints.txt torch` "
    "(LibRecommender imports scikit-learn and torch without requiring them); about "
    "3 minutes. The script runs LibRecommender there (`--librec-python`), passing the "
    "training events and features in a `.npz` and reading back the vectors of every "
    "epoch; kgrec's evaluation runs in the main process.")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), choices=MODELS)
    ap.add_argument("--dataset", default="movie-half")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--epochs", type=int, default=10, help="epoch cap per model")
    ap.add_argument("--patience", type=int, default=3,
                    help="stop after this many epochs without a better valid ndcg@10")
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--max-len", type=int, default=20, help="history items in the user tower")
    ap.add_argument("--sbc-n-neg", type=int, default=3,
                    help="YoutubeSBC in-batch negatives per row (example: 3; batch-1: all)")
    ap.add_argument("--librec-python", default=LIBREC_PYTHON,
                    help="interpreter of LibRecommender's environment (LibRec-TwoTower)")
    ap.add_argument("--librec-temperature", type=float, default=0.05,
                    help="LibRecommender TwoTower softmax temperature")
    ap.add_argument("--max-samples", type=int, default=None,
                    help="smoke tests: train on a seeded subset of this many samples")
    ap.add_argument("--out", default=str(RESULTS / "peers_two_tower"),
                    help="output path without suffix (.json and .md are written)")
    ap.add_argument("--rewrite-md", action="store_true",
                    help="train nothing: re-render OUT.md (and the descriptive fields of "
                    "OUT.json: notes, setup, environment) from OUT.json's figures")
    args = ap.parse_args(argv)
    if args.rewrite_md:
        out = Path(args.out)
        payload = json.loads(out.with_suffix(".json").read_text())
        payload["notes"] = NOTES
        payload["setup"] = {m: SETUP[m] for m in payload["models"]}
        payload["environment"] = ENVIRONMENT
        write_atomic(out.with_suffix(".json"), json.dumps(payload, indent=2) + "\n")
        write_md(payload, out.with_suffix(".md"))
        log(f"re-rendered {out.with_suffix('.md')}")
        return
    if not 1 <= args.sbc_n_neg < args.batch_size:
        ap.error("--sbc-n-neg must lie in [1, batch_size)")
    torch.set_num_threads(1)
    cli = sys.argv[1:] if argv is None else argv
    cmd = ("KGREC_DATA=/work/shared/datasets OMP_NUM_THREADS=1 /tmp/peers-venv/bin/python "
           + " ".join(shlex.quote(a) for a in ["benchmarks/peers_two_tower.py", *cli]))
    out = Path(args.out)
    versions = {p: version(p) for p in ("torch-rechub", "torch", "numpy", "pandas",
                                        "scikit-learn", "kgrec")}
    versions["python"] = platform.python_version()
    t_start = time.perf_counter()
    runs, data = [], None
    workroot = tempfile.TemporaryDirectory(prefix="peers-tt-")  # scratch, removed at the end
    args.workroot = workroot.name
    for seed in args.seeds:
        ds, split = prepare_data(RunConfig(dataset=args.dataset, protocol="loo", seed=seed))
        info = {"dataset": args.dataset, "n_users": ds.n_users, "n_items": ds.n_items,
                "n_train": len(split.train), "n_valid_queries": len(split.valid_queries),
                "n_test_queries": len(split.test_queries), "checksum": ds.checksum}
        if data is None:
            data = info
        elif data["checksum"] != info["checksum"]:
            data.setdefault("checksums_by_seed", {})[seed] = info["checksum"]
        for m in args.models:
            log(f"{PEER[m]} {m} seed {seed} on {args.dataset}")
            load_before = [round(x, 2) for x in os.getloadavg()]
            t = time.perf_counter()
            try:
                if m == "LibRec-TwoTower":
                    r = run_librec(m, ds, split, seed, args)
                else:
                    r = run_model(m, ds, split, seed, args)
            except Exception as exc:  # a peer that fails is reported, not fatal
                import traceback

                traceback.print_exc()
                r = {"peer": "LibRecommender" if m == "LibRec-TwoTower" else "torch-rechub",
                     "model": m, "seed": seed,
                     "error": f"{type(exc).__name__}: {exc}"}
            r["wall_seconds"] = time.perf_counter() - t
            r["load_average_before"] = load_before
            r["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
            r["data_checksum"] = ds.checksum
            runs.append(r)
            log(f"{m} seed {seed}: done in {r['wall_seconds']:.0f}s "
                + (json.dumps({k: round(r['kgrec_eval'][k], 4) for k in REPORTED[:4]})
                   if "error" not in r else r["error"]))
    workroot.cleanup()
    for r in runs:
        for k, v in (r.get("peer_versions") or {}).items():
            if k in ("LibRecommender", "tensorflow-cpu"):
                versions[k] = v
    summ = {m: summary([r for r in runs if r["model"] == m and "error" not in r])
            for m in args.models
            if any(r["model"] == m and "error" not in r for r in runs)}
    payload = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": cmd,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs "
                   f"(shared), torch threads 1",
        "wall_seconds": time.perf_counter() - t_start,
        "seeds": args.seeds,
        "models": args.models,
        "versions": versions,
        "budget": (f"epoch cap {args.epochs}, early stop after {args.patience} epochs without "
                   f"a better valid ndcg@10, batch {args.batch_size}, Adam lr {args.lr}, "
                   f"history {args.max_len}, YoutubeSBC n_neg {args.sbc_n_neg}, "
                   f"LibRecommender temperature {args.librec_temperature}"
                   + (f", trained on {args.max_samples} samples only (smoke test)"
                      if args.max_samples else "")
                   + ". Figures are at this budget, not tuned."),
        "environment": ENVIRONMENT,
        "data": data,
        "setup": {m: SETUP[m] for m in args.models},
        "notes": NOTES,
        "summary": summ,
        "runs": runs,
    }
    write_atomic(out.with_suffix(".json"), json.dumps(payload, indent=2) + "\n")
    write_md(payload, out.with_suffix(".md"))
    log(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
