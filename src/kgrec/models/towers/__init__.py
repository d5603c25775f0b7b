"""Two-tower retrieval models (user tower x item tower, in-batch softmax)."""
