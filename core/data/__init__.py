"""Datasets: the embedded MNIST subset, real loaders with checksums and a cache, splits, batches."""
