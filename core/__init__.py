"""The engine: tensors with reverse-mode autodiff, layers, losses, optimizers, schedules, metrics.

Nothing here imports textual, click or rich: the engine is usable from plain Python and from the
GPU machines that have no UI packages installed.
"""
