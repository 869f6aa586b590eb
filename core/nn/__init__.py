"""The from-scratch engine a student reads first: tensors with reverse-mode autodiff, layers,
activations, losses, initializers and the MLP built from them.

May import: the shared vocabulary (`core.backend`, `core.errors`). Nothing of optim, data, run or study.
"""
