"""Optimizers (update rules over flat parameter buffers), learning-rate schedules as pure functions
of the epoch, and the compiled Adam kernel.

May import: `core.nn` (tensors and parameters) and the shared vocabulary.
"""
