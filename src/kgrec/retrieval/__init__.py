"""Serving a trained run: the self-contained artifact, recommendations, (later) ANN indexes."""

from kgrec.retrieval.artifact import Artifact, load, save_artifact

__all__ = ["Artifact", "load", "save_artifact"]
