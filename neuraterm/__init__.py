"""neuraterm: a terminal trainer for neural networks with a from-scratch engine."""

__version__ = "0.1.0"
