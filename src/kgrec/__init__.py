"""kgrec: knowledge-graph-enhanced and multi-task recommendation in PyTorch.

Quick start::

    from kgrec.experiments.run import RunConfig, train
    result = train(RunConfig(dataset="music", model="mkr", seed=0))
    print(result.metrics["test"])

    art = kgrec.load(result.run_dir)          # later, in any process, without the data
    art.recommend(["2"], k=10)                # raw item ids for raw user ids
"""

__version__ = "0.1.0"

__all__ = ["load"]


def load(run_dir):
    """A trained run, ready to recommend, from its directory alone (no raw data, nothing
    retrained): see :func:`kgrec.retrieval.artifact.load`."""
    from kgrec.retrieval.artifact import load as _load

    return _load(run_dir)
