"""Evaluation: CTR metrics on labelled rows, top-K metrics by full ranking over users
(:func:`evaluate_topk`) and over queries of the ranking protocols (:func:`evaluate_ranking`)."""

from __future__ import annotations

from kgrec.eval.evaluator import DEFAULT_KS, evaluate_ctr, evaluate_topk, predict, recommend
from kgrec.eval.metrics import (
    TOPK_METRICS,
    auc,
    check_ks,
    ctr_metrics,
    topk_metrics,
    topk_sums,
)
from kgrec.eval.ranking import evaluate_ranking, recommend_queries

__all__ = [
    "DEFAULT_KS",
    "TOPK_METRICS",
    "auc",
    "check_ks",
    "ctr_metrics",
    "evaluate_ctr",
    "evaluate_ranking",
    "evaluate_topk",
    "predict",
    "recommend",
    "recommend_queries",
    "topk_metrics",
    "topk_sums",
]
