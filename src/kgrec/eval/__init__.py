"""Evaluation: CTR metrics on labelled rows and top-K metrics by full ranking."""

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

__all__ = [
    "DEFAULT_KS",
    "TOPK_METRICS",
    "auc",
    "check_ks",
    "ctr_metrics",
    "evaluate_ctr",
    "evaluate_topk",
    "predict",
    "recommend",
    "topk_metrics",
    "topk_sums",
]
