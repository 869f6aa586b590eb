"""Export to PyTorch: our names mapped onto an equivalent `torch.nn.Sequential`.

Our Linear layers carry their activation (fused), where PyTorch has a separate module for it,
so layer indices shift: `Linear(784, 128, relu), Linear(128, 10)` is torch's
`Sequential(Linear, ReLU, Linear)` and our `1.weight` becomes `2.weight`.
"""
from __future__ import annotations

import numpy as np

from neuraterm.core.run.checkpoint import Snapshot


def torch_state_dict(snap: Snapshot) -> dict[str, np.ndarray]:
    layers = snap.meta["architecture"]["layers"]
    mapping, torch_index = {}, 0
    for ours, description in enumerate(layers):
        mapping[str(ours)] = str(torch_index)
        fused = description.startswith("Linear(") and "activation=identity" not in description
        torch_index += 2 if fused else 1
    state = {}
    for name, array in snap.weights.items():
        index, rest = name.split(".", 1)
        state[f"{mapping[index]}.{rest}"] = array
        if rest == "running_var":
            state[f"{mapping[index]}.num_batches_tracked"] = np.array(0, dtype=np.int64)
    return state
