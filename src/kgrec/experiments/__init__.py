"""The experiments layer: one training run, a KG-embedding run, the benchmarks; it wires
data, models and the trainer and writes run directories."""
