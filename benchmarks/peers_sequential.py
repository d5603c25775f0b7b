"""Peer figures for kgrec's sequential-recall models on exactly kgrec's splits.

Two peers, each trained with its own code and measured on this machine:

* **RecBole 1.2.1** GRU4Rec and SASRec under kgrec's ``loo`` protocol (leave-one-out by time,
  full ranking over all items). The events are written as RecBole atomic ``.inter`` files
  (``user_id:token``, ``item_id:token``, ``timestamp:float``; the timestamp is the event's
  rank in kgrec's (user, time, file position) order, so RecBole's stable time sort gives
  kgrec's sequence order) and RecBole splits them itself with ``eval_args: {split: {LS:
  valid_and_test}, order: TO, mode: full}``, no filters. The script then checks, query by
  query, that RecBole's test / valid samples (user, target, last 50 history items) and its
  training samples are kgrec's. Standard RecBole configs: CE loss over all items,
  ``train_neg_sample_args: None``, ``MAX_ITEM_LIST_LENGTH`` 50, d 64 (GRU4Rec
  ``embedding_size`` = ``hidden_size`` = 64; RecBole's GRU4Rec default hidden is 128),
  SASRec 2 layers 2 heads (RecBole defaults), RecBole's default dropout, batch 2048, Adam 1e-3,
  ``valid_metric: NDCG@10``, early stopping on it. Two sets of test figures are reported:
  RecBole's own evaluator (``recbole_eval``: history *not* masked, RecBole's behaviour for
  sequential models) and kgrec's definitions on kgrec's test queries (``kgrec_eval``: the
  best RecBole checkpoint scores all items for every kgrec query, history masked as kgrec's
  ``loo``); the same rescoring without the mask must reproduce RecBole's own figures
  (``kgrec_eval_unmasked``, a check of the id mapping).
* **torch-rechub** MIND, ComiRec-DR and ComiRec-SA under kgrec's ``user-split`` (held-out
  users 8:1:1, seeded; first 80% of a held-out user's sequence is the history, the rest the
  targets; history not masked). Trained with torch-rechub's own models and ``MatchTrainer``
  in list-wise mode (``mode=2``: softmax cross-entropy over the positive and ``neg_ratio``
  negatives drawn once by ``negative_sample(method_id=1)``, popularity^0.75, as its
  ``examples/matching/run_ml_mind.py`` / ``run_ml_comirec.py``; in-batch mode refuses
  multi-interest models, whose user embedding is 3-D). Samples are every (prefix, next item)
  of the training users' sequences, history = the last 20 items (ComiRec's Amazon setting),
  post-padded; d 64, K 4, batch 256, Adam lr 1e-3, weight decay 1e-6, temperature 0.02
  passed as the examples do (torch-rechub 0.9.0's MIND / ComiRec do not use it). No user
  features: held-out users have no trained id, so the user tower gets one constant feature
  (a learned bias) in place of the examples' user profile. Evaluation by kgrec's
  definitions: every query's score of an item is the max over interests of the inner
  product, top-50, recall / hr / ndcg @ 10, 20, 50 with the standard IDCG
  (:func:`kgrec.eval.metrics.topk_metrics`); the epoch is picked by validation NDCG@10
  (kgrec's default monitor) and tested once.

Seconds per epoch are the training part only (no evaluation), one torch thread.

Run it in the peers' environment (see benchmarks/results/peers_sequential.md for how it is
built; RecBole 1.2.1 needs ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` with torch >= 2.6, which
the script sets itself)::

    KGREC_DATA=/work/shared/datasets OMP_NUM_THREADS=1 \\
        /tmp/peers-venv/bin/python benchmarks/peers_sequential.py
    # a smoke test: one epoch each, torch-rechub on 5120 samples, results elsewhere
    /tmp/peers-venv/bin/python benchmarks/peers_sequential.py --epochs ALL=1 \\
        --rechub-max-samples 5120 --out /tmp/peers_smoke
    # longer runs (hours on 2 cores): the caps of the RecBole / torch-rechub examples
    /tmp/peers-venv/bin/python benchmarks/peers_sequential.py \\
        --epochs GRU4Rec=30 SASRec=30 MIND=10 ComiRec-DR=10 ComiRec-SA=10
    # Amazon Sports too
    /tmp/peers-venv/bin/python benchmarks/peers_sequential.py \\
        --datasets amazon-beauty amazon-sports
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # RecBole 1.2.1's torch.load
os.environ.setdefault("TQDM_DISABLE", "1")  # torch-rechub's per-batch progress bars

import argparse
import copy
import json
import platform
import shlex
import sys
import time
from collections import OrderedDict
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from _cli import epoch_timings, peer_md_head, recbole_fit_timed, recbole_prepare, scratch_cwd

from kgrec.data.catalog import load_dataset
from kgrec.data.split import Queries, Split
from kgrec.eval.metrics import topk_metrics
from kgrec.experiments.run import _ranking_split

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
KS = (10, 20, 50)
RECBOLE_MODELS = ("GRU4Rec", "SASRec")
RECHUB_MODELS = ("MIND", "ComiRec-DR", "ComiRec-SA")
# Epoch caps of the default run, sized so that it takes about 25 minutes on a 2-core machine
# with one torch thread (seconds per epoch measured there in the results file).
DEFAULT_EPOCHS = {"GRU4Rec": 3, "SASRec": 1, "MIND": 10, "ComiRec-DR": 1, "ComiRec-SA": 10}


def log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", flush=True)


def split_of(ds, protocol: str, seed: int) -> Split:
    """The split ``kgrec train`` builds (``kgrec.experiments.run._ranking_split``)."""
    return _ranking_split(ds, SimpleNamespace(protocol=protocol, seed=seed))


# --------------------------------------------------------------------------- kgrec metrics
def rank_eval(score_block, queries: Queries, n_items: int, ks=KS, *, masks=(True,),
              block: int = 512) -> list[dict]:
    """kgrec's top-K metrics of ``queries``, one dict per entry of ``masks`` (history masked
    to -inf or not), from one scoring pass: ``score_block(rows)`` returns the ``(len(rows),
    n_items)`` float scores of those queries over all items (kgrec ids); ties are broken by
    ``torch.topk``. Metrics as :func:`kgrec.eval.metrics.topk_metrics` (``hit@K`` is
    ``hr@K``; precision left out)."""
    kmax = max(ks)
    tpos, titems = queries.target_pairs()
    tkeys = np.unique(tpos * n_items + titems)
    hits = [np.zeros((len(queries), kmax), dtype=bool) for _ in masks]
    for start in range(0, len(queries), block):
        rows = np.arange(start, min(len(queries), start + block), dtype=np.int64)
        s = score_block(rows).float()
        for h, mask in zip(hits, masks, strict=True):
            sm = s
            if mask:
                hp, hi = queries.history_pairs(rows)
                sm = s.index_put((torch.from_numpy(hp), torch.from_numpy(hi)),
                                 torch.tensor(float("-inf")))
            top = torch.topk(sm, kmax, dim=1).indices.numpy()
            keys = rows[:, None] * n_items + top
            at = np.minimum(np.searchsorted(tkeys, keys), len(tkeys) - 1)
            h[rows] = tkeys[at] == keys
    out = []
    for h in hits:
        m = topk_metrics(h, np.diff(queries.tgt_indptr), ks)
        out.append({k: float(v) for k, v in m.items()
                    if k != "sums" and not k.startswith(("precision", "hit@"))}
                   | {"n_queries": len(queries)})
    return out


def left_aligned(queries: Queries, rows: np.ndarray, max_len: int, id_map: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``(seq, lens)``: the last ``max_len`` history items of ``rows`` mapped by ``id_map``,
    oldest first, left-aligned and padded with 0 at the end (RecBole's and ComiRec's layout);
    always ``max_len`` wide."""
    h = queries.history(rows, max_len)  # right-aligned, -1 padded, width <= max_len
    lens = (h >= 0).sum(1)
    k = np.arange(max_len)
    ok = k[None, :] < lens[:, None]
    src = np.where(ok, (h.shape[1] - lens)[:, None] + k[None, :], 0)
    vals = np.take_along_axis(h, src, axis=1)
    out = np.where(ok, id_map[np.where(ok, vals, 0)], 0).astype(np.int64)
    return out, lens


# --------------------------------------------------------------------------- RecBole
def _kgrec_order(ev) -> np.ndarray:
    """Event indices in kgrec's order: user, time, file position (``_Events.build``)."""
    n = len(ev.user)
    t = np.arange(n) if ev.timestamp is None else np.asarray(ev.timestamp)
    return np.lexsort((np.arange(n), t, np.asarray(ev.user)))


def write_recbole_inter(ds, root: Path, name: str) -> Path:
    """``root/name/name.inter``: every event, timestamp = its rank in kgrec's order."""
    import pandas as pd

    ev = ds.interactions
    order = _kgrec_order(ev)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name}.inter"
    df = pd.DataFrame({"user_id:token": np.asarray(ev.user), "item_id:token": np.asarray(ev.item),
                       "timestamp:float": rank.astype(np.float64)})
    df.to_csv(path, sep="\t", index=False)
    return path


def _tokens(dataset, field: str, ids: np.ndarray) -> np.ndarray:
    return np.asarray(dataset.id2token(field, ids)).astype(np.int64)


def verify_recbole_split(dataset, train_ds, valid_ds, test_ds, split: Split, max_len: int
                         ) -> dict:
    """Compare RecBole's leave-one-out samples with kgrec's ``loo`` split, query by query.

    Test and valid: same users, same target, same last ``max_len`` history items. Train:
    RecBole's training samples of each user are kgrec's training sequence from its second
    item on (targets) with the preceding ``min(i, max_len)`` items as history."""
    out: dict = {}
    for part, rds, q in (("test", test_ds, split.test_queries),
                         ("valid", valid_ds, split.valid_queries)):
        f = rds.inter_feat
        u = _tokens(dataset, "user_id", f["user_id"].numpy())
        t = _tokens(dataset, "item_id", f["item_id"].numpy())
        seq = f["item_id_list"].numpy()
        ln = f["item_length"].numpy()
        order = np.argsort(u, kind="stable")
        u, t, seq, ln = u[order], t[order], seq[order], ln[order]
        same_users = len(u) == len(q) and bool((u == q.users).all())
        res = {"recbole_samples": len(u), "kgrec_queries": len(q), "same_users": same_users}
        if same_users:
            _, ti = q.target_pairs()
            res["target_mismatches"] = int((t != ti).sum()) if len(ti) == len(t) else -1
            # kgrec history, last max_len, left-aligned, as RecBole token ids -> kgrec ids
            ident = np.arange(int(max(q.hist_items.max(), 0)) + 1)
            hist, hlen = left_aligned(q, np.arange(len(q)), max_len, ident)
            tok_seq = np.where(seq > 0, 0, -1)
            nz = seq > 0
            tok_seq[nz] = _tokens(dataset, "item_id", seq[nz])
            mine = np.where(np.arange(max_len)[None, :] < hlen[:, None], hist, -1)
            res["history_mismatches"] = int(((tok_seq != mine).any(1) | (ln != hlen)).sum())
        out[part] = res
    # train
    f = train_ds.inter_feat
    u = _tokens(dataset, "user_id", f["user_id"].numpy())
    t = _tokens(dataset, "item_id", f["item_id"].numpy())
    ln = f["item_length"].numpy()
    last = f["item_id_list"].numpy()[np.arange(len(ln)), np.maximum(ln - 1, 0)]
    last = _tokens(dataset, "item_id", last)
    order = np.argsort(u, kind="stable")  # within a user RecBole keeps time order
    u, t, ln, last = u[order], t[order], ln[order], last[order]
    indptr, items = split.train_sequences
    counts = np.diff(indptr)
    starts = np.repeat(indptr[:-1], counts)
    pos = np.arange(len(items)) - starts
    sel = pos >= 1
    k_user = np.repeat(np.arange(len(counts)), counts)[sel]
    k_tgt = items[sel]
    k_prev = items[np.flatnonzero(sel) - 1]
    k_len = np.minimum(pos[sel], max_len)
    same = len(u) == len(k_user)
    res = {"recbole_samples": len(u), "kgrec_samples": int(sel.sum()), "same_count": same}
    if same:
        res["mismatches"] = int(((u != k_user) | (t != k_tgt) | (last != k_prev)
                                 | (ln != k_len)).sum())
    out["train"] = res
    ok = (all(out[p].get("same_users") and out[p].get("target_mismatches") == 0
              and out[p].get("history_mismatches") == 0 for p in ("test", "valid"))
          and res.get("mismatches") == 0)
    out["identical"] = bool(ok)
    return out


def run_recbole(model_name: str, ds, ds_name: str, split: Split, args, work: Path) -> dict:
    from recbole.data.interaction import Interaction
    from recbole.utils import get_model, get_trainer, init_seed

    epochs = args.epochs[model_name]
    rb_name = f"kgrec-{ds_name}"
    root = work / "recbole_data"
    if not (root / rb_name / f"{rb_name}.inter").is_file():
        write_recbole_inter(ds, root, rb_name)
    params = {
        "data_path": str(root), "checkpoint_dir": str(work / "recbole_saved"),
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
        "MAX_ITEM_LIST_LENGTH": 50,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full",
                      "group_by": "user"},
        "train_neg_sample_args": None, "loss_type": "CE",
        "metrics": ["Hit", "NDCG", "MRR"], "topk": [10, 20], "valid_metric": "NDCG@10",
        "epochs": epochs, "stopping_step": args.stopping_step,
        "train_batch_size": 2048, "eval_batch_size": 4096, "learning_rate": 1e-3,
        "seed": args.seed, "reproducibility": True, "use_gpu": False, "gpu_id": "",
        "show_progress": False, "state": "INFO", "worker": 0, "metric_decimal_place": 6,
    }
    if model_name == "GRU4Rec":
        params.update({"embedding_size": 64, "hidden_size": 64})
    elif model_name == "SASRec":
        params.update({"hidden_size": 64, "n_layers": 2, "n_heads": 2})
    config, dataset, train_data, valid_data, test_data, prep = recbole_prepare(
        model_name, rb_name, params)
    check = verify_recbole_split(dataset, train_data._dataset, valid_data._dataset,
                                 test_data._dataset, split, 50)
    log(f"RecBole {model_name} {ds_name}: split identical to kgrec loo: {check['identical']}")
    if not check["identical"]:
        log(json.dumps(check))
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    # Importing RecBole's model package runs recbole/model/sequential_recommender/sine.py,
    # which switches on torch.autograd anomaly detection for the whole process (a debugging
    # mode: same results, training ~1.6x slower). Off, as every other run here.
    torch.autograd.set_detect_anomaly(False)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)

    def on_train(epoch: int, rec: dict, r) -> None:
        log(f"  {model_name} epoch {epoch}: train {rec['train_s'][-1]:.1f}s loss "
            f"{float(r if not isinstance(r, tuple) else sum(r)):.4f}")

    def on_valid(epoch: int, score: float, rec: dict) -> None:
        log(f"  {model_name} epoch {epoch}: valid NDCG@10 {score:.4f} "
            f"({rec['valid_s'][-1]:.1f}s)")

    fit = recbole_fit_timed(trainer, train_data, valid_data, on_train=on_train,
                            on_valid=on_valid)
    test_result = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
    train_s, train_cpu, valid_s = fit["train_s"], fit["train_cpu"], fit["valid_s"]
    valid_curve, best, best_epoch = fit["valid_curve"], fit["best"], fit["best_epoch"]

    # kgrec's evaluation of the best checkpoint on kgrec's own test queries
    model = trainer.model.eval()
    q = split.test_queries
    n_items = ds.n_items
    rb_tokens = np.asarray(dataset.field2id_token["item_id"][1:]).astype(np.int64)
    kg2rb = np.zeros(n_items, dtype=np.int64)  # 0 (RecBole's [PAD]) for items it never saw
    kg2rb[rb_tokens] = np.arange(1, len(rb_tokens) + 1)
    unseen = int(n_items - len(rb_tokens))

    def score_block(rows: np.ndarray) -> torch.Tensor:
        seq, lens = left_aligned(q, rows, 50, kg2rb)
        inter = Interaction({model.ITEM_SEQ: torch.from_numpy(seq),
                             model.ITEM_SEQ_LEN: torch.from_numpy(lens)})
        with torch.no_grad():
            s = model.full_sort_predict(inter).view(len(rows), -1)
        out = torch.full((len(rows), n_items), float("-inf"))
        out[:, torch.from_numpy(rb_tokens)] = s[:, 1:]
        return out

    t = time.perf_counter()
    kg_unmasked, kg_masked = rank_eval(score_block, q, n_items, masks=(False, True))
    eval_s = time.perf_counter() - t
    rb = {k.lower(): float(v) for k, v in test_result.items()}
    return {
        "peer": "recbole", "model": model_name, "dataset": ds_name, "protocol": "loo",
        "seed": args.seed,
        "config": {k: config[k] for k in (
            "epochs", "stopping_step", "train_batch_size", "learning_rate", "loss_type",
            "MAX_ITEM_LIST_LENGTH", "valid_metric", "eval_args", "train_neg_sample_args",
            "hidden_size", "embedding_size", "n_layers", "n_heads", "num_layers",
            "dropout_prob", "hidden_dropout_prob", "attn_dropout_prob", "inner_size",
            "weight_decay", "seed") if config[k] is not None},
        "recbole_eval": rb,
        "kgrec_eval": kg_masked,
        "kgrec_eval_unmasked": kg_unmasked,
        "valid_ndcg10_curve": valid_curve,
        "best_valid_ndcg10": best,
        "epochs_run": len(train_s),
        "best_epoch": best_epoch,
        "epoch_cap": epochs,
        "stopped_early": len(train_s) < epochs,
        "train_seconds_per_epoch": float(np.mean(train_s)),
        "train_cpu_seconds_per_epoch": float(np.mean(train_cpu)),
        "train_seconds_each": [round(x, 2) for x in train_s],
        "valid_seconds_per_epoch": float(np.mean(valid_s)) if valid_s else None,
        "data_prep_seconds": prep, "kgrec_eval_seconds": eval_s,
        "items_unseen_by_recbole": unseen,
        "autograd_anomaly_detection": "off (RecBole's import switches it on; see notes)",
        "split_check": check,
    }


# --------------------------------------------------------------------------- torch-rechub
def rechub_train_samples(split: Split, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (history, next item) of the training sequences, item ids + 1 (0 pads):
    ``(hist (N, max_len) left-aligned, post-padded; target (N,))``."""
    indptr, items = split.train_sequences
    counts = np.diff(indptr)
    pos = np.arange(len(items)) - np.repeat(indptr[:-1], counts)
    j = np.flatnonzero(pos >= 1)
    lens = np.minimum(pos[j], max_len)
    k = np.arange(max_len)
    ok = k[None, :] < lens[:, None]
    src = (j - lens)[:, None] + k[None, :]
    hist = np.where(ok, items[np.where(ok, src, 0)] + 1, 0)
    return hist.astype(np.int64), items[j] + 1


def run_rechub(model_name: str, ds, ds_name: str, split: Split, args, work: Path) -> dict:
    from torch_rechub.basic.features import SequenceFeature, SparseFeature
    from torch_rechub.models.matching import MIND, ComirecDR, ComirecSA
    from torch_rechub.trainers import MatchTrainer
    from torch_rechub.utils.data import MatchDataGenerator
    from torch_rechub.utils.match import negative_sample

    torch.set_num_threads(1)
    torch.autograd.set_detect_anomaly(False)  # in case RecBole ran first (see run_recbole)
    epochs = args.epochs[model_name]
    L, D, K = args.rechub_max_len, 64, 4
    n_items = ds.n_items
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    hist, target = rechub_train_samples(split, L)
    if args.rechub_max_samples:  # smoke tests only: a seeded subset of the samples
        keep = np.sort(np.random.default_rng(args.seed).permutation(len(target))
                       [:args.rechub_max_samples])
        hist, target = hist[keep], target[keep]
    counts = np.bincount(split.train_sequences[1] + 1, minlength=n_items + 1)
    cnt = {int(i): int(counts[i]) for i in np.flatnonzero(counts)}
    items_cnt_order = OrderedDict(sorted(cnt.items(), key=lambda x: x[1], reverse=True))
    neg = np.asarray(negative_sample(items_cnt_order, ratio=len(target) * args.neg_ratio,
                                     method_id=1)).reshape(len(target), args.neg_ratio)
    x_train = {"user_const": np.zeros(len(target), dtype=np.int64), "item_id": target,
               "hist_item_id": hist, "neg_items": neg.astype(np.int64)}
    y_train = np.zeros(len(target), dtype=np.int64)  # label 0: the positive is column 0
    prep = time.perf_counter() - t0

    user_features = [SparseFeature("user_const", vocab_size=1, embed_dim=D)]
    history_features = [SequenceFeature("hist_item_id", vocab_size=n_items + 1, embed_dim=D,
                                        pooling="concat", shared_with="item_id")]
    item_features = [SparseFeature("item_id", vocab_size=n_items + 1, embed_dim=D)]
    neg_item_feature = [SequenceFeature("neg_items", vocab_size=n_items + 1, embed_dim=D,
                                        pooling="concat", shared_with="item_id")]
    feats = (user_features, history_features, item_features, neg_item_feature)
    if model_name == "MIND":
        model = MIND(*feats, max_length=L, temperature=0.02, interest_num=K)
    elif model_name == "ComiRec-DR":
        model = ComirecDR(*feats, max_length=L, temperature=0.02, interest_num=K)
    elif model_name == "ComiRec-SA":
        model = ComirecSA(*feats, temperature=0.02, interest_num=K)
    else:
        raise ValueError(model_name)
    if model_name == "ComiRec-DR":
        # torch-rechub 0.9.0's CapsuleNetwork creates the bilinear map of ComiRec-DR as
        # nn.Parameter(torch.Tensor(...)): uninitialised memory (garbage, NaN loss at the first
        # batch when it holds NaN / huge values). Initialised as ComiRec's code does
        # (THUDM/ComiRec: tf.random_normal_initializer(), mean 0, std 1).
        torch.nn.init.normal_(model.capsule.w, 0.0, 1.0)
    save_dir = work / f"rechub-{model_name}-{ds_name}"
    save_dir.mkdir(parents=True, exist_ok=True)
    trainer = MatchTrainer(model, mode=2, optimizer_params={"lr": 1e-3, "weight_decay": 1e-6},
                           n_epoch=epochs, device="cpu", model_path=str(save_dir))
    dg = MatchDataGenerator(x=x_train, y=y_train)
    all_item = {"item_id": np.arange(1, n_items + 1)}
    train_dl, _, _ = dg.generate_dataloader({"item_id": np.zeros(1)}, all_item,
                                            batch_size=256, num_workers=0)

    def scorer(queries: Queries):
        model.eval()
        torch.manual_seed(args.seed)  # MIND's routing starts from random logits
        with torch.no_grad():
            model.mode = "item"
            items = model({"item_id": torch.arange(1, n_items + 1)})  # (n_items, D)
        ident = np.arange(n_items) + 1

        def score_block(rows: np.ndarray) -> torch.Tensor:
            seq, _ = left_aligned(queries, rows, L, ident)
            with torch.no_grad():
                model.mode = "user"
                u = model({"user_const": torch.zeros(len(rows), dtype=torch.long),
                           "hist_item_id": torch.from_numpy(seq)})  # (b, K, D)
            return torch.einsum("bkd,nd->bkn", u, items).amax(1)

        return score_block

    def evaluate(queries: Queries) -> dict:
        m = rank_eval(scorer(queries), queries, n_items, masks=(queries.mask_history,))
        model.mode = None
        return m[0]

    train_s, train_cpu, valid_curve, valid_s = [], [], [], []
    best, best_epoch, best_state = -1.0, -1, None
    for epoch in range(epochs):
        model.mode = None
        t, c = time.perf_counter(), time.process_time()
        loss = trainer.train_one_epoch(train_dl)
        train_s.append(time.perf_counter() - t)
        train_cpu.append(time.process_time() - c)
        t = time.perf_counter()
        v = evaluate(split.valid_queries)
        valid_s.append(time.perf_counter() - t)
        valid_curve.append(v["ndcg@10"])
        log(f"  {model_name} epoch {epoch}: train {train_s[-1]:.1f}s loss {loss:.4f} valid "
            f"ndcg@10 {v['ndcg@10']:.4f} recall@50 {v['recall@50']:.4f} ({valid_s[-1]:.1f}s)")
        if v["ndcg@10"] > best:
            best, best_epoch, best_state = v["ndcg@10"], epoch, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    test = evaluate(split.test_queries)
    valid = evaluate(split.valid_queries)
    return {
        "peer": "torch-rechub", "model": model_name, "dataset": ds_name,
        "protocol": "user-split", "seed": args.seed,
        "config": {"mode": 2, "neg_ratio": args.neg_ratio, "negative_sample_method": 1,
                   "max_len": L, "embed_dim": D, "interest_num": K, "batch_size": 256,
                   "lr": 1e-3, "weight_decay": 1e-6, "temperature_passed": 0.02,
                   "user_features": "one constant feature", "padding": "post",
                   "capsule_w_init": ("normal(0, 1), as ComiRec (torch-rechub leaves it "
                                      "uninitialised)") if model_name == "ComiRec-DR" else None,
                   "truncating": "pre (most recent)", "monitor": "valid ndcg@10",
                   "n_train_samples": len(target)},
        "kgrec_eval": test,
        "valid_at_best": valid,
        "valid_ndcg10_curve": valid_curve,
        "epoch_cap": epochs,
        "epochs_run": len(train_s),
        "best_epoch": best_epoch,
        **epoch_timings(train_s, train_cpu, valid_s, prep),
        "history_masked": bool(split.test_queries.mask_history),
    }


# --------------------------------------------------------------------------- report
def _f(x, nd=4) -> str:
    return "—" if x is None else f"{x:.{nd}f}"


def _epoch_s(r: dict) -> float:
    return r["train_seconds_per_epoch"] + (r["valid_seconds_per_epoch"] or 0.0)


def write_md(payload: dict, path: Path) -> None:
    lines = [
        *peer_md_head("Peer figures for kgrec's sequential-recall models", payload,
                      "one torch thread; "),
        "Budget (stated caps, not tuned): " + payload["budget"],
        "",
    ]
    rb = [r for r in payload["runs"] if r.get("peer") == "recbole" and "error" not in r]
    if rb:
        lines += [
            "## RecBole 1.2.1, protocol `loo` (leave-one-out by time, all items ranked)",
            "",
            "`kgrec` columns: the best RecBole checkpoint scored on kgrec's test queries with "
            "kgrec's metric code, history masked (kgrec's `loo`). `RecBole` columns: RecBole's "
            "own evaluator, which does not mask the history for sequential models.",
            "",
            "| model | dataset | kgrec HR@20 | kgrec NDCG@20 | kgrec HR@10 | kgrec NDCG@10 "
            "| RecBole Hit@20 | RecBole NDCG@20 | s/epoch (CPU s) | epochs run / cap "
            "| best epoch | split identical |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rb:
            k, o = r["kgrec_eval"], r["recbole_eval"]
            lines.append(
                f"| {r['model']} | {r['dataset']} | {_f(k['hr@20'])} | {_f(k['ndcg@20'])} "
                f"| {_f(k['hr@10'])} | {_f(k['ndcg@10'])} | {_f(o.get('hit@20'))} "
                f"| {_f(o.get('ndcg@20'))} | {r['train_seconds_per_epoch']:.1f} "
                f"({r['train_cpu_seconds_per_epoch']:.1f}) | {r['epochs_run']} / "
                f"{r['epoch_cap']} | {r['best_epoch']} | {r['split_check']['identical']} |")
        lines.append("")
    rh = [r for r in payload["runs"] if r.get("peer") == "torch-rechub" and "error" not in r]
    if rh:
        lines += [
            "## torch-rechub, protocol `user-split` (ComiRec's held-out users, seed "
            f"{payload['seed']}, history not masked)",
            "",
            "| model | dataset | recall@20 | recall@50 | hr@20 | hr@50 | ndcg@20 | ndcg@50 "
            "| s/epoch (CPU s) | epochs run / cap | best epoch |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rh:
            k = r["kgrec_eval"]
            lines.append(
                f"| {r['model']} | {r['dataset']} | {_f(k['recall@20'])} | {_f(k['recall@50'])} "
                f"| {_f(k['hr@20'])} | {_f(k['hr@50'])} | {_f(k['ndcg@20'])} "
                f"| {_f(k['ndcg@50'])} | {r['train_seconds_per_epoch']:.1f} "
                f"({r['train_cpu_seconds_per_epoch']:.1f}) | {r['epochs_run']} / {r['epoch_cap']} "
                f"| {r['best_epoch']} |")
        lines.append("")
    ok = [r for r in payload["runs"] if "error" not in r]
    if ok:
        lines += [
            "Seconds per epoch: training only, wall clock (CPU seconds of the process in "
            "brackets), one torch thread, machine shared with other jobs (load averages per "
            "run in the JSON). Longer budgets at these speeds, training plus validation per "
            "epoch: " + "; ".join(
                f"{r['model']} {n} epochs ≈ {n * _epoch_s(r) / 60:.0f} min" for r in ok
                for n in [30 if r["peer"] == "recbole" else 10]) + ".",
            "",
        ]
    errs = [r for r in payload["runs"] if "error" in r]
    if errs:
        lines += ["## Failures", ""]
        lines += [f"- {r['peer']} {r['model']} {r['dataset']}: `{r['error']}`" for r in errs]
        lines.append("")
    lines += ["## Notes", ""] + [f"- {n}" for n in payload["notes"]] + [""]
    lines += ["## Data", ""]
    for name, d in payload["datasets"].items():
        lines.append(f"- `{name}`: {d['n_users']} users, {d['n_items']} items, "
                     f"{d['n_events']} events, checksum `{d['checksum']}`; splits "
                     + "; ".join(f"`{p}` {s}" for p, s in d["splits"].items()))
    lines.append("")
    path.write_text("\n".join(lines))


NOTES = [
    "Same splits as kgrec: `kgrec.experiments.run._ranking_split` (what `kgrec train` uses) "
    "builds them in this script. RecBole re-splits the written `.inter` file itself; the "
    "script compares every RecBole train / valid / test sample with kgrec's split (user, "
    "target, last-50 history; `split_check` in the JSON).",
    "RecBole leave-one-out differs from kgrec's only for users with exactly 3 events (RecBole "
    "trains on the 2nd item and has no valid sample; kgrec makes it the valid target); users "
    "with 2 events are training-only in both. The Amazon sets are 5-core: no such user.",
    "RecBole's full-sort evaluation of sequential models does not mask the history; kgrec's "
    "`loo` does (a target repeated from the history then counts as a miss). Hence two sets "
    "of figures; `kgrec_eval_unmasked` (kgrec's code without the mask) reproduces RecBole's "
    "own numbers up to ties.",
    "RecBole GRU4Rec: embedding_size = hidden_size = 64 (RecBole's default hidden_size is "
    "128), dropout 0.3 (default). SASRec: RecBole defaults (2 layers, 2 heads, hidden 64, "
    "inner 256, dropout 0.5 / 0.5). Both CE over all items, batch 2048, Adam 1e-3, "
    "seed via RecBole's init_seed.",
    "torch-rechub 0.9.0: MIND / ComirecDR / ComirecSA accept `temperature` but never use it "
    "(scores are cosine similarities in [-1, 1] fed to the softmax); MatchTrainer's in-batch "
    "mode raises for them (3-D user embeddings), so list-wise mode 2 with `neg_ratio` "
    "negatives drawn once (popularity^0.75), as torch-rechub's examples. Held-out users have "
    "no trained id, so one constant user feature replaces the examples' user profile.",
    "torch-rechub 0.9.0's ComirecDR leaves its capsule bilinear map `w` uninitialised "
    "(`nn.Parameter(torch.Tensor(...))`): whatever memory holds; a first run here died with "
    "NaN at the first batch. The script initialises it N(0, 1) as ComiRec's TensorFlow code.",
    "RecBole 1.2.1 switches on `torch.autograd.set_detect_anomaly(True)` for the whole process "
    "when its model package is imported (`sequential_recommender/sine.py`); that slows "
    "training about 1.6x (SASRec 8.3 vs 5.2 s per batch, GRU4Rec 1.6 vs 1.05 here) without "
    "changing results. The script switches it off after RecBole's import, so the seconds per "
    "epoch are the models' own cost; an out-of-the-box RecBole 1.2.1 run is that much slower.",
    "ComiRec's own training draws one random cut per user per batch and a large sampled "
    "softmax; torch-rechub trains on every prefix with a few fixed negatives: these are "
    "torch-rechub's figures, not ComiRec's.",
]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["amazon-beauty"],
                    choices=["amazon-beauty", "amazon-sports"])
    ap.add_argument("--recbole-models", nargs="*", default=list(RECBOLE_MODELS),
                    choices=RECBOLE_MODELS)
    ap.add_argument("--rechub-models", nargs="*", default=list(RECHUB_MODELS),
                    choices=RECHUB_MODELS)
    ap.add_argument("--rechub-datasets", nargs="+", default=["amazon-beauty"],
                    choices=["amazon-beauty", "amazon-sports"],
                    help="datasets for torch-rechub (only those also in --datasets)")
    ap.add_argument("--epochs", nargs="*", default=[], metavar="MODEL=N",
                    help="epoch caps, e.g. SASRec=30 MIND=10 (defaults: "
                    + " ".join(f"{k}={v}" for k, v in DEFAULT_EPOCHS.items())
                    + "); ALL=N sets every model")
    ap.add_argument("--stopping-step", type=int, default=5,
                    help="RecBole early stopping patience (valid NDCG@10)")
    ap.add_argument("--rechub-max-len", type=int, default=20)
    ap.add_argument("--neg-ratio", type=int, default=3,
                    help="torch-rechub list-wise negatives per sample (its examples: 3)")
    ap.add_argument("--rechub-max-samples", type=int, default=None,
                    help="smoke tests: train torch-rechub on a seeded subset of this size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS / "peers_sequential"),
                    help="output path without suffix (.json and .md are written)")
    ap.add_argument("--workdir", default=None, help="scratch folder (default: a temp dir)")
    args = ap.parse_args(argv)
    epochs = dict(DEFAULT_EPOCHS)
    for kv in args.epochs:
        k, _, v = kv.partition("=")
        if k == "ALL":
            epochs = dict.fromkeys(epochs, int(v))
        elif k in epochs:
            epochs[k] = int(v)
        else:
            ap.error(f"--epochs: unknown model {k!r}; known: {', '.join(epochs)}, ALL")
    args.epochs = epochs
    torch.set_num_threads(1)
    cli = sys.argv[1:] if argv is None else argv
    cmd = ("KGREC_DATA=/work/shared/datasets OMP_NUM_THREADS=1 /tmp/peers-venv/bin/python "
           + " ".join(shlex.quote(a) for a in ["benchmarks/peers_sequential.py", *cli]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    runs, dsinfo = [], {}
    versions = {p: version(p) for p in ("recbole", "torch-rechub", "torch", "numpy", "pandas",
                                        "kgrec")}
    versions["python"] = platform.python_version()
    with scratch_cwd(args.workdir, prefix="peers-seq-") as work:
        for name in args.datasets:
            ds = load_dataset(name)
            splits = {"loo": split_of(ds, "loo", args.seed)}
            if name in args.rechub_datasets and args.rechub_models:
                splits["user-split"] = split_of(ds, "user-split", args.seed)
            dsinfo[name] = {"n_users": ds.n_users, "n_items": ds.n_items,
                            "n_events": len(ds.interactions.user), "checksum": ds.checksum,
                            "splits": {p: s.sizes() for p, s in splits.items()}}
            jobs = [("recbole", m) for m in args.recbole_models]
            if "user-split" in splits:
                jobs += [("torch-rechub", m) for m in args.rechub_models]
            for peer, m in jobs:
                log(f"{peer} {m} on {name}")
                load_before = [round(x, 2) for x in os.getloadavg()]
                t = time.perf_counter()
                try:
                    if peer == "recbole":
                        r = run_recbole(m, ds, name, splits["loo"], args, work)
                    else:
                        r = run_rechub(m, ds, name, splits["user-split"], args, work)
                except Exception as exc:  # a peer that fails is reported, not fatal
                    import traceback

                    traceback.print_exc()
                    r = {"peer": peer, "model": m, "dataset": name,
                         "error": f"{type(exc).__name__}: {exc}"}
                r["wall_seconds"] = time.perf_counter() - t
                r["load_average_before"] = load_before
                r["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
                r["data_checksum"] = ds.checksum
                r["versions"] = versions
                r["command"] = cmd
                runs.append(r)
                log(f"{peer} {m} on {name}: done in {r['wall_seconds']:.0f}s "
                    + (json.dumps(r.get("kgrec_eval")) if "error" not in r else r["error"]))
    payload = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": cmd,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs "
                   f"(shared), torch threads 1",
        "wall_seconds": time.perf_counter() - t_start,
        "seed": args.seed,
        "versions": versions,
        "epoch_caps": epochs,
        "budget": ("epoch caps " + ", ".join(f"{k} {v}" for k, v in epochs.items())
                   + f"; RecBole stopping_step {args.stopping_step} on valid NDCG@10, "
                   "torch-rechub best epoch by valid ndcg@10"
                   + (f", trained on {args.rechub_max_samples} samples only (smoke test)"
                      if args.rechub_max_samples else "")
                   + ". Figures are at this budget, not at convergence."),
        "notes": NOTES,
        "datasets": dsinfo,
        "runs": runs,
    }
    out.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n")
    write_md(payload, out.with_suffix(".md"))
    log(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
