"""kgrec: knowledge-graph-enhanced and multi-task recommendation in PyTorch.

Quick start::

    from kgrec.run import RunConfig, train
    result = train(RunConfig(dataset="music", model="mkr", seed=0))
    print(result.metrics["test"])
"""

__version__ = "0.1.0"
