"""Activation codes shared by the Python ops and kernels.cu's `ACT_*` #defines."""
ACT_CODES = {"identity": 0, "relu": 1, "leaky_relu": 2, "tanh": 3, "sigmoid": 4, "gelu": 5, "silu": 6}
