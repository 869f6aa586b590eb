"""Export to PyTorch: our names mapped onto an equivalent `torch.nn.Sequential`, with what it takes to
feed it the way `neuraterm eval` does.

Our Linear layers carry their activation (fused), where PyTorch has a separate module for it,
so layer indices shift: `Linear(784, 128, relu), Linear(128, 10)` is torch's
`Sequential(Linear, ReLU, Linear)` and our `1.weight` becomes `2.weight`.

Weights alone reproduce nothing: the model was trained on normalized inputs (pixels / 255, then minus
the training split's mean and over its deviation when standardized), so the export also holds
`input_scale`, `input_mean`, `input_std` (inputs = (stored values * scale - mean) / std, per feature),
`input_shape` (one sample as stored) and `class_names`. The parameters are the keys that start with
a layer index (`0.weight`); the README shows the loading lines.
"""
from __future__ import annotations

import numpy as np

from neuraterm.core.data.normalize import unit
from neuraterm.core.run.checkpoint import Snapshot

INPUT_KEYS = ("input_scale", "input_mean", "input_std", "input_shape", "class_names")


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


def input_record(data) -> dict:
    """What a model folder's model.json says of its inputs (`input`): the factor from stored values to
    units (1/255 for uint8 pixels) and one sample's stored shape."""
    return {"scale": float(unit(data.train.images)), "shape": [int(d) for d in data.image_shape],
            "dtype": str(data.train.images.dtype)}


def export_arrays(snap: Snapshot) -> dict[str, np.ndarray]:
    """The state dict and the input transform and class names, as the arrays of one .npz."""
    record = snap.meta.get("input")
    if not record:  # a folder written before model.json recorded its inputs: read the data as eval does
        from neuraterm.core.run.build import load_data
        record = input_record(load_data(snap.config, recorded=snap.meta.get("dataset_source")))
    features = snap.meta["architecture"]["sizes"][0]
    mean = snap.normalization.get("mean", np.zeros(features, np.float32))
    std = snap.normalization.get("std", np.ones(features, np.float32))
    return {**torch_state_dict(snap), "input_scale": np.float32(record["scale"]),
            "input_mean": np.asarray(mean, np.float32), "input_std": np.asarray(std, np.float32),
            "input_shape": np.array(record["shape"], np.int64), "class_names": np.array(snap.meta["class_names"])}
