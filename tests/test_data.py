"""Loaders, checksums, parsers, splits and batch order, on real files and on files written here."""
import gzip
import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from neuraterm.core.data import cifar, idx, registry
from neuraterm.core.data.batches import BatchOrder
from neuraterm.core.data.download import fetch, verify
from neuraterm.core.data.noise import gaussian
from neuraterm.core.data.normalize import Normalizer
from neuraterm.core.data.prepare import prepare
from neuraterm.core.data.splits import stratified_split, stratified_subset
from neuraterm.core.errors import NeuratermError

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(not (DEBIAN_FASHION / "train-images-idx3-ubyte.gz").exists(),
                                   reason="Debian's dataset-fashion-mnist is not installed (.ci/run installs it)")


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NEURATERM_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))


def test_embedded_set_is_real_mnist_balanced():
    d = registry.load("mnist-5k")
    assert d.x_train.shape == (5000, 784) and d.x_train.dtype == np.uint8
    assert np.bincount(d.y_train).tolist() == [500] * 10
    # Real digits: ink in the middle, blank corners, and many distinct gray levels.
    images = d.x_train.reshape(-1, 28, 28)
    assert images[:, :3, :3].max() == 0 and images[:, 10:18, 10:18].mean() > 60
    assert len(np.unique(d.x_train)) == 256


@needs_fashion
def test_fashion_mnist_from_debian_is_verified_and_parsed():
    d = registry.load("fashion-mnist", download=False)
    assert d.x_train.shape == (60000, 784) and d.x_test.shape == (10000, 784)
    assert np.bincount(d.y_train).tolist() == [6000] * 10
    assert d.y_test[:5].tolist() == [9, 2, 1, 1, 6]  # ankle boot, pullover, trouser, trouser, shirt
    assert d.class_names[9] == "Ankle boot"
    assert registry.locate("fashion-mnist") == str(DEBIAN_FASHION)


def test_idx_round_trip_plain_and_gzip(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (7, 28, 28))
    (tmp_path / "a").write_bytes(idx_bytes(images))
    (tmp_path / "b.gz").write_bytes(gzip.compress(idx_bytes(images)))
    np.testing.assert_array_equal(idx.read_idx(tmp_path / "a"), images)
    np.testing.assert_array_equal(idx.read_idx(tmp_path / "b.gz"), images)


@pytest.mark.parametrize("corruption,message", [
    (lambda raw: raw[:-10], "truncated or corrupt"),
    (lambda raw: b"\x00\x00\x0d\x03" + raw[4:], "not an IDX uint8 file"),
    (lambda raw: raw[:6], "truncated IDX header"),
    (lambda raw: b"", "not an IDX file"),
])
def test_corrupt_idx_files_name_the_file(tmp_path, corruption, message):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(corruption(idx_bytes(np.zeros((3, 28, 28)))))
    with pytest.raises(NeuratermError, match=message) as err:
        idx.read_idx(path)
    assert str(path) in str(err.value)


def test_corrupt_gzip_is_a_clear_error(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((3, 4))))[:-12])
    with pytest.raises(NeuratermError, match="cannot read"):
        idx.read_idx(path)


def test_label_count_mismatch(tmp_path):
    (tmp_path / "i").write_bytes(idx_bytes(np.zeros((5, 28, 28))))
    (tmp_path / "l").write_bytes(idx_bytes(np.zeros(4)))
    with pytest.raises(NeuratermError, match="5 images but .* 4 labels"):
        idx.read_pair(tmp_path / "i", tmp_path / "l")


def test_wrong_checksum_is_refused_with_the_file_name(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(b"<html>moved</html>")
    with pytest.raises(NeuratermError, match="does not match the published"):
        verify(path, "0" * 64)
    verify(path, hashlib.sha256(b"<html>moved</html>").hexdigest())


def test_mnist_files_in_a_data_dir_are_checksummed(tmp_path):
    """A user's --data-dir with wrongly named or damaged originals is refused, not silently parsed."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    for name in registry.IDX_FILES:
        (data_dir / name).write_bytes(gzip.compress(idx_bytes(np.zeros((2, 28, 28) if "images" in name else 2))))
    with pytest.raises(NeuratermError, match="sha256"):
        registry.load("mnist", data_dir, download=False)


def test_unpacked_torchvision_files_are_read(tmp_path):
    raw = tmp_path / "KMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in registry.IDX_FILES:
        shape = (12, 28, 28) if "images" in name else (12,)
        (raw / name[:-3]).write_bytes(idx_bytes(rng.integers(0, 10, shape)))
    d = registry.load("kmnist", tmp_path, download=False)
    assert d.x_train.shape == (12, 784) and d.x_test.shape == (12, 784)
    assert registry.locate("kmnist", tmp_path) == str(raw)


def test_offline_error_says_what_to_place_where(tmp_path):
    with pytest.raises(NeuratermError, match=r"kmnist: train-images-idx3-ubyte.gz not found; place it in .*cache/kmnist"):
        registry.load("kmnist", download=False)


def test_download_failure_leaves_no_partial_file(tmp_path):
    dest = tmp_path / "f.gz"
    with pytest.raises(NeuratermError, match="could not download f.gz"):
        fetch(["http://127.0.0.1:9/nothing/"], dest, "0" * 64, timeout=2)
    assert not dest.exists() and not (tmp_path / "f.gz.part").exists()


def test_download_verifies_and_renames(tmp_path):
    source = tmp_path / "src.bin"
    source.write_bytes(b"payload" * 100)
    seen = []
    dest = fetch([source.as_uri()], tmp_path / "out" / "f.bin", hashlib.sha256(source.read_bytes()).hexdigest(),
                 progress=lambda name, done, total: seen.append(done))
    assert dest.read_bytes() == source.read_bytes() and seen[-1] == 700
    with pytest.raises(NeuratermError, match="does not match"):
        fetch([source.as_uri()], tmp_path / "out" / "g.bin", "f" * 64)
    assert not (tmp_path / "out" / "g.bin").exists()


def _emnist_zip(path: Path, split: str, glyph: np.ndarray):
    """An archive laid out like NIST's gzip.zip, with images stored transposed as EMNIST does."""
    stored = np.stack([glyph.T, glyph.T])
    labels = np.array([1, 2]) if split == "letters" else np.array([0, 1])
    with zipfile.ZipFile(path, "w") as zf:
        for part in ("train", "test"):
            zf.writestr(f"gzip/emnist-{split}-{part}-images-idx3-ubyte.gz", gzip.compress(idx_bytes(stored)))
            zf.writestr(f"gzip/emnist-{split}-{part}-labels-idx1-ubyte.gz", gzip.compress(idx_bytes(labels)))
        zf.writestr(f"gzip/emnist-{split}-mapping.txt", "1 65\n2 66\n" if split == "letters" else "0 48\n1 49\n")


def test_emnist_images_come_out_upright(tmp_path, monkeypatch):
    # An "L": a vertical bar on the left and a foot at the bottom; transposed it would lie on top.
    glyph = np.zeros((28, 28), np.uint8)
    glyph[4:24, 6] = 255
    glyph[23, 6:20] = 255
    info = registry.DATASETS["emnist-digits"]
    archive = tmp_path / "cache" / "emnist-digits" / "gzip.zip"
    archive.parent.mkdir(parents=True)
    _emnist_zip(archive, "digits", glyph)
    monkeypatch.setitem(registry.DATASETS, "emnist-digits",
                        registry.DatasetInfo(**{**info.__dict__, "sha256": (hashlib.sha256(archive.read_bytes()).hexdigest(),)}))
    d = registry.load("emnist-digits", download=False)
    np.testing.assert_array_equal(d.x_train[0].reshape(28, 28), glyph)
    assert d.class_names == ["0", "1"]


def test_emnist_letters_labels_start_at_zero(tmp_path, monkeypatch):
    archive = tmp_path / "cache" / "emnist-letters" / "gzip.zip"
    archive.parent.mkdir(parents=True)
    _emnist_zip(archive, "letters", np.eye(28, dtype=np.uint8))
    info = registry.DATASETS["emnist-letters"]
    monkeypatch.setitem(registry.DATASETS, "emnist-letters",
                        registry.DatasetInfo(**{**info.__dict__, "sha256": (hashlib.sha256(archive.read_bytes()).hexdigest(),)}))
    d = registry.load("emnist-letters", download=False)
    assert d.y_train.tolist() == [0, 1] and d.class_names == ["A", "B"]


def test_cifar_binary_records(tmp_path):
    rng = np.random.default_rng(0)
    records = np.concatenate([rng.integers(0, 10, (4, 1)), rng.integers(0, 256, (4, 3072))], axis=1).astype(np.uint8)
    x, y = cifar.parse_records(records.tobytes(), "batch", 1)
    np.testing.assert_array_equal(y, records[:, 0])
    np.testing.assert_array_equal(x, records[:, 1:])
    with pytest.raises(NeuratermError, match="not a whole number"):
        cifar.parse_records(records.tobytes()[:-1], "batch", 1)


def test_cifar10_archive(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    archive = tmp_path / "cache" / "cifar10" / "cifar-10-binary.tar.gz"
    archive.parent.mkdir(parents=True)
    with tarfile.open(archive, "w:gz") as tar:
        def add(name, data):
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
            add(name, np.concatenate([rng.integers(0, 10, (2, 1)), rng.integers(0, 256, (2, 3072))], 1).astype(np.uint8).tobytes())
        add("batches.meta.txt", b"airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n")
    info = registry.DATASETS["cifar10"]
    monkeypatch.setitem(registry.DATASETS, "cifar10",
                        registry.DatasetInfo(**{**info.__dict__, "sha256": (hashlib.sha256(archive.read_bytes()).hexdigest(),)}))
    d = registry.load("cifar10", download=False)
    assert d.x_train.shape == (10, 3072) and d.x_test.shape == (2, 3072) and d.class_names[-1] == "truck"


def test_k49_npz_refuses_pickles(tmp_path):
    folder = tmp_path / "cache" / "k49"
    folder.mkdir(parents=True)
    for name in registry.DATASETS["k49"].files:
        np.savez(folder / name, arr_0=np.array([{"evil": 1}], dtype=object))
    info = registry.DATASETS["k49"]
    with pytest.raises(NeuratermError, match="k49-train-imgs.npz"):
        registry._load_k49(registry.DatasetInfo(**{**info.__dict__, "md5": ()}), None, False, None)


def test_unknown_dataset():
    with pytest.raises(NeuratermError, match="unknown dataset 'mnist-6k'"):
        registry.load("mnist-6k")


def test_stratified_split_keeps_proportions_and_is_deterministic():
    labels = np.repeat(np.arange(5), [1500, 100, 700, 50, 30])  # 50:1 imbalance
    parts = stratified_split(labels, [0.7, 0.1, 0.2], seed=3)
    assert sum(len(p) for p in parts) == len(labels)
    assert len(np.unique(np.concatenate(parts))) == len(labels)
    totals = np.bincount(labels)
    for part, fraction in zip(parts, [0.7, 0.1, 0.2]):
        counts = np.bincount(labels[part], minlength=5)
        assert np.all(np.abs(counts - totals * fraction) <= 1)
    again = stratified_split(labels, [0.7, 0.1, 0.2], seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    other = stratified_split(labels, [0.7, 0.1, 0.2], seed=4)
    assert not np.array_equal(parts[1], other[1])


def test_subset_is_stratified():
    labels = np.repeat(np.arange(10), 500)
    keep = stratified_subset(labels, 1000, seed=0)
    assert len(keep) == 1000 and np.bincount(labels[keep]).tolist() == [100] * 10


def test_prepare_embedded_has_three_disjoint_stratified_splits():
    p = prepare(registry.load("mnist-5k"), 0.1, 0.2, seed=0)
    assert (len(p.train.y), len(p.val.y), len(p.test.y)) == (3500, 500, 1000)
    assert p.counts()["test"] == [100] * 10


def test_standardize_uses_training_statistics_only():
    d = registry.load("mnist-5k")
    p = prepare(d, normalize="standardize", seed=0)
    train = np.asarray(p.train.x)
    x = p.normalizer(train)
    assert x.dtype == np.float32
    np.testing.assert_allclose(x.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(p.normalizer.mean, train.mean(0) / 255, atol=1e-6)
    assert not np.allclose(p.normalizer.mean, np.asarray(p.test.x).mean(0) / 255, atol=1e-3)
    with pytest.raises(NeuratermError, match="unknown normalization"):
        Normalizer.fit("minmax", train)


def test_batch_order_is_seeded_resumable_and_covers_everything():
    order = BatchOrder(10, 4, seed=1)
    first = list(order.epoch())
    assert [len(b) for b in first] == [4, 4, 2] and len(order) == 3
    assert sorted(np.concatenate(first).tolist()) == list(range(10))
    state = order.get_state()
    second = list(order.epoch())
    order.set_state(state)
    again = list(order.epoch())
    assert all(np.array_equal(a, b) for a, b in zip(second, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, second))
    assert [len(b) for b in BatchOrder(10, 1, 0).epoch()] == [1] * 10
    assert [len(b) for b in BatchOrder(10, 100, 0).epoch()] == [10]
    assert [len(b) for b in BatchOrder(10, 4, 0, drop_last=True).epoch()] == [4, 4]


def test_gaussian_noise_is_seeded_and_clipped():
    x = np.full((100, 10), 0.5, np.float32)
    a, b = gaussian(x, 0.3, seed=1), gaussian(x, 0.3, seed=1)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1
    assert 0.2 < a.std() < 0.35
    assert gaussian(x, 0.0) is x


def test_feeder_on_the_cpu_gathers_and_normalizes():
    from neuraterm.core.data.feeder import Feeder, choose
    x = np.arange(60, dtype=np.uint8).reshape(20, 3)
    y = np.arange(20)
    feeder = Feeder(np, x, y, Normalizer("scale"), 8)
    assert feeder.placement == "host" and "CPU" in feeder.describe()
    order = [np.array([3, 1, 19]), np.array([0, 2])]
    out = [(idx, xb.copy(), yb) for idx, xb, yb in feeder.stream(order)]
    np.testing.assert_allclose(out[0][1], x[[3, 1, 19]] / np.float32(255))
    np.testing.assert_array_equal(out[1][2], [0, 2])
    with pytest.raises(NeuratermError, match="placement"):
        choose(np, 10, "vram")
