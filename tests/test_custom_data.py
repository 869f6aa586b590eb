"""Your own data (`data.dataset = PATH`): each format, each validation error, the record in the model
folder, and memory: splits as rows, memory-mapped arrays, chunked statistics."""
import json
import math
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from neuraterm.core.config import Config
from neuraterm.core.data import custom, normalize, registry
from neuraterm.core.data.batches import BatchOrder
from neuraterm.core.data.noise import Gaussian, gaussian
from neuraterm.core.data.normalize import Normalizer, moments
from neuraterm.core.data.prepare import prepare
from neuraterm.core.errors import NeuratermError
from neuraterm.core.run.trainer import Trainer


def images(n=240, classes=3, seed=0, side=6):
    """Learnable little images: each class brightens its own band of rows."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.integers(0, 60, (n, side, side)).astype(np.uint8)
    for c in range(classes):
        x[y == c, 2 * c:2 * c + 2] += 150
    return x, y


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "neuraterm", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


# -- formats -------------------------------------------------------------------------------
def test_npz_with_a_test_split_trains_from_the_cli_and_records_where_it_came_from(tmp_path):
    x, y = images()
    data = tmp_path / "mine.npz"
    np.savez(data, x=x[:200], y=y[:200], x_test=x[200:], y_test=y[200:], class_names=np.array(["a", "b", "c"]))
    run = tmp_path / "run"
    result = cli("train", "--preset", "quick", "--set", f"data.dataset={data}", "--set", "train.batch_size=8",
                 "--epochs", "4", "--out", run)
    assert result.returncode == 0, result.stderr
    meta = json.loads((run / "model.json").read_text())
    assert meta["dataset_source"]["path"] == str(data.resolve()) and meta["dataset_source"]["format"] == "npz"
    assert len(meta["dataset_source"]["sha256"]) == 64 and meta["class_names"] == ["a", "b", "c"]
    report = json.loads((run / "report.json").read_text())
    assert report["test_size"] == 40 and report["test_accuracy"] > 0.9


def test_stored_npz_members_are_memory_mapped_and_compressed_ones_read(tmp_path):
    x, y = images()
    np.savez(tmp_path / "plain.npz", x=x, y=y)
    np.savez_compressed(tmp_path / "packed.npz", x=x, y=y)
    plain, packed = registry.load(str(tmp_path / "plain.npz")), registry.load(str(tmp_path / "packed.npz"))
    assert isinstance(plain.x_train, np.memmap) and not isinstance(packed.x_train, np.memmap)
    assert plain.x_train.shape == (240, 36) and plain.image_shape == (6, 6)
    np.testing.assert_array_equal(plain.x_train, packed.x_train)
    np.testing.assert_array_equal(plain.y_train, y)
    assert plain.x_test is None and plain.class_names == ["0", "1", "2"]


def test_a_folder_of_npy_files(tmp_path):
    x, y = images()
    folder = tmp_path / "arrays"
    folder.mkdir()
    np.save(folder / "x.npy", x.reshape(240, 6, 6, 1))
    np.save(folder / "y.npy", y.astype(np.int32))
    d = registry.load(str(folder))
    assert isinstance(d.x_train, np.memmap) and d.x_train.shape == (240, 36) and d.image_shape == (6, 6, 1)
    assert d.origin["format"] == "npy"


def test_csv_with_the_label_first_reads_pixels_as_uint8(tmp_path):
    x, y = images(n=30)
    path = tmp_path / "digits.csv"
    path.write_text("\n".join(",".join(map(str, [label, *row])) for label, row in zip(y, x.reshape(30, -1))) + "\n")
    d = registry.load(str(path))
    assert d.x_train.dtype == np.uint8 and d.x_train.shape == (30, 36)
    np.testing.assert_array_equal(d.x_train, x.reshape(30, -1))
    np.testing.assert_array_equal(d.y_train, y)


def test_csv_with_a_named_word_label_column_reads_float_features(tmp_path):
    path = tmp_path / "flowers.csv"
    path.write_text("length,species,width\n5.1,setosa,3.5\n7.0,versicolor,3.2\n6.3,virginica,3.3\n"
                    "4.9,setosa,3.0\n6.4,versicolor,3.2\n5.8,virginica,2.7\n")
    d = registry.load(f"{path}#species")
    assert d.x_train.dtype == np.float32 and d.class_names == ["setosa", "versicolor", "virginica"]
    np.testing.assert_allclose(d.x_train[1], [7.0, 3.2])
    assert d.y_train.tolist() == [0, 1, 2, 0, 1, 2] and d.origin["label_column"] == "species"


def test_csv_numeric_labels_sort_as_numbers(tmp_path):
    path = tmp_path / "n.csv"
    path.write_text("10,1,2\n2,3,4\n10,5,6\n2,7,8\n")
    d = registry.load(str(path))
    assert d.class_names == ["2", "10"] and d.y_train.tolist() == [1, 0, 1, 0]


def test_a_folder_of_images_per_class(tmp_path):
    Image = pytest.importorskip("PIL.Image", reason="the `images` extra (Pillow) is not installed; CI installs it")
    x, y = images(n=12)
    for i, (image, label) in enumerate(zip(x, y)):
        (tmp_path / "pics" / f"class{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(tmp_path / "pics" / f"class{label}" / f"{i:02}.png")
    d = registry.load(str(tmp_path / "pics"))
    assert d.class_names == ["class0", "class1", "class2"] and d.image_shape == (6, 6)
    first_of_class1 = x[y == 1][0].reshape(-1)
    np.testing.assert_array_equal(d.x_train[d.y_train == 1][0], first_of_class1)
    summary = custom.describe(str(tmp_path / "pics"))
    assert (summary.classes, summary.train, summary.image_shape, summary.format) == (3, 12, (6, 6), "images")
    Image.fromarray(np.zeros((7, 6), np.uint8)).save(tmp_path / "pics" / "class2" / "odd.png")
    with pytest.raises(NeuratermError, match=r"odd.png: 6x7 pixels, but .* is 6x6"):
        registry.load(str(tmp_path / "pics"))


# -- validation ----------------------------------------------------------------------------
X, Y = images()
BAD = {
    "no y": ({"x": X}, r"no array 'y'"),
    "too few labels": ({"x": X, "y": Y[:-1]}, r"x has 240 rows but y has 239 labels"),
    "negative label": ({"x": X, "y": Y - 1}, r"negative labels \(-1\)"),
    "float labels": ({"x": X, "y": Y.astype(np.float64)}, r"y must be a 1-D array of integer class labels"),
    "label beyond names": ({"x": X, "y": Y, "class_names": np.array(["a", "b"])}, r"label 2 but only 2 class names"),
    "NaN": ({"x": np.where(np.arange(36) == 5, np.nan, X.reshape(240, 36)), "y": Y}, r"NaN or infinite values \(first in row 0\)"),
    "1-D x": ({"x": X.reshape(-1), "y": Y}, r"x must be N x D"),
    "wide ints": ({"x": X.astype(np.int64) * 2, "y": Y}, r"integers outside 0..255"),
    "test half": ({"x": X, "y": Y, "x_test": X}, r"x_test and y_test go together"),
    "test width": ({"x": X, "y": Y, "x_test": X[:, :3], "y_test": Y}, r"x_test rows are 18 uint8 values, x rows 36"),
    "one class": ({"x": X, "y": np.zeros(240, np.int64)}, r"one class only"),
    "a gap": ({"x": X, "y": np.where(Y == 1, 3, Y)}, r"no sample has label 1; labels must run 0..3 with a sample of "
                                                       r"every class"),
    "a huge label": ({"x": X, "y": np.where(Y == 1, 10**12, Y)}, r"label 1000000000000 with 240 samples"),
    "a named class without samples": ({"x": X, "y": Y, "class_names": np.array(["a", "b", "c", "d"])},
                                      r"no sample has label 3 \('d'\)"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_invalid_arrays_are_one_line_errors(tmp_path, case):
    arrays, message = BAD[case]
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(NeuratermError, match=message) as err:
        registry.load(str(tmp_path / "bad.npz"))
    assert "\n" not in str(err.value) and str(tmp_path / "bad.npz") in str(err.value)


def test_pickled_arrays_are_refused(tmp_path):
    np.savez(tmp_path / "evil.npz", x=np.array([{"a": 1}] * 4, dtype=object), y=np.arange(4))
    with pytest.raises(NeuratermError, match=r"pickled data\); neuraterm never unpickles"):
        registry.load(str(tmp_path / "evil.npz"))


@pytest.mark.parametrize("name,content,message", [
    ("bad.csv", "label,a,b\n1,2,3\n0,x,5\n", r"bad.csv: could not convert string 'x' to float64 on line 3"),
    ("short.csv", "1,2,3\n0,4\n", r"short.csv: line 2 has 2 fields; every line needs 3, as the first line has$"),
    ("long.csv", "a,b,c\n1,2,3\n0,4,5\n1,6,7,8\n", r"long.csv: line 4 has 4 fields; every line needs 3"),
    ("quoted.csv", 'y,a,b\n"x,1",2,3\n"z",4\n', r"quoted.csv: line 3 has 2 fields; every line needs 3"),
    ("empty.csv", "", r"empty CSV file"),
    ("noname.csv#kind", "label,a\n1,2\n", r"no column named 'kind' in the first line \(columns: label, a\)"),
    ("one.csv", "1\n2\n", r"one column only"),
    ("x.npy", None, r"a .npy file holds one array"),
    ("notes.txt", "hello", r"not a dataset neuraterm reads"),
])
def test_unreadable_files_are_one_line_errors(tmp_path, name, content, message):
    path = tmp_path / name.split("#")[0]
    if content is None:
        np.save(path, np.zeros(3))
    else:
        path.write_text(content)
    with pytest.raises(NeuratermError, match=message):
        registry.load(str(tmp_path / name))


def test_missing_paths_and_unknown_names_say_what_they_are(tmp_path):
    with pytest.raises(NeuratermError, match=r"nothing.npz: no such file or folder"):
        registry.load(str(tmp_path / "nothing.npz"))
    with pytest.raises(NeuratermError, match=r"unknown dataset 'mnist-6k'.*give the path of your own"):
        registry.load("mnist-6k")
    assert custom.is_path("./data.npz") and custom.is_path("flowers.csv#species") and not custom.is_path("mnist")


def test_a_broken_npz_names_the_file(tmp_path):
    path = tmp_path / "cut.npz"
    np.savez(path, x=X, y=Y)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(NeuratermError, match="cut.npz: not a readable .npz archive"):
        registry.load(str(path))


# -- the record in the model folder ----------------------------------------------------------
def test_a_changed_file_is_refused_on_resume_and_eval_and_a_moved_cwd_still_finds_it(tmp_path):
    x, y = images()
    data = tmp_path / "mine.npz"
    np.savez(data, x=x, y=y)
    run = tmp_path / "run"
    first = cli("train", "--preset", "quick", "--set", "data.dataset=mine.npz", "--epochs", "1", "--out", run,
                cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    found = cli("eval", run, "--noise", "0", cwd=elsewhere)  # config says 'mine.npz': found through the record
    assert found.returncode == 0, found.stderr
    np.savez(data, x=x[::-1], y=y[::-1])
    for result in (cli("resume", run, "--epochs", "2", cwd=tmp_path), cli("eval", run, cwd=tmp_path)):
        assert result.returncode == 2
        assert "changed since this model was trained on it" in result.stderr and "Traceback" not in result.stderr
    assert json.loads((run / "model.json").read_text())["dataset_source"]["path"] == str(data)


def test_resuming_a_run_on_memory_mapped_data_is_exact(tmp_path):
    x, y = images(n=400)
    np.savez(tmp_path / "mine.npz", x=x, y=y)  # stored: memory-mapped, batches read from the disk
    common = ["--preset", "quick", "--set", f"data.dataset={tmp_path / 'mine.npz'}", "--set", "train.batch_size=32"]
    straight = cli("train", *common, "--epochs", "3", "--out", tmp_path / "straight")
    first = cli("train", *common, "--epochs", "1", "--out", tmp_path / "resumed")
    assert straight.returncode == 0 and first.returncode == 0, straight.stderr + first.stderr
    assert cli("resume", tmp_path / "resumed", "--epochs", "3").returncode == 0
    for name in ("0.weight", "1.bias"):
        a = np.load(tmp_path / "straight" / "weights" / f"{name}.npy", allow_pickle=False)
        b = np.load(tmp_path / "resumed" / "weights" / f"{name}.npy", allow_pickle=False)
        assert np.array_equal(a, b), name


def test_csv_blank_lines_are_skipped_wherever_they_are(tmp_path, monkeypatch):
    from neuraterm.core.data import csv_table
    monkeypatch.setattr(csv_table, "BLOCK", 2)
    path = tmp_path / "gaps.csv"
    path.write_text("0,1,2\n\n\n\n\n1,3,4\n\n0,5,6\n")
    d = registry.load(str(path))
    assert d.y_train.tolist() == [0, 1, 0] and d.x_train[:, 0].tolist() == [1, 3, 5]


def test_datasets_command_checks_a_path(tmp_path):
    x, y = images()
    np.savez(tmp_path / "mine.npz", x=x, y=y, x_test=x[:10], y_test=y[:10])
    listed = cli("datasets", tmp_path / "mine.npz")
    assert listed.returncode == 0
    assert "3       240       10" in listed.stdout and "(npz, 6 x 6, checked)" in listed.stdout
    assert "your own data" in cli("datasets").stdout
    bad = cli("datasets", tmp_path / "none.npz")
    assert bad.returncode == 2 and "no such file or folder" in bad.stderr


def test_labels_1_to_k_are_read_as_0_to_k_minus_1_with_a_note(tmp_path):
    """Labels counted from 1 (R, MATLAB) are K classes, not K+1 with an empty class 0 that caps macro-F1."""
    np.savez(tmp_path / "one.npz", x=X, y=Y + 1)
    d = registry.load(str(tmp_path / "one.npz"))
    assert d.class_names == ["1", "2", "3"] and d.y_train.min() == 0 and d.y_train.max() == 2
    assert d.notes == [f"{tmp_path / 'one.npz'}: labels run 1..3 (no 0); read as classes 0..2 (label k is class k-1)"]
    assert custom.describe(str(tmp_path / "one.npz")).classes == 3  # the cheap listing agrees
    listed = cli("datasets", tmp_path / "one.npz")
    assert listed.returncode == 0 and "      3       240" in listed.stdout
    assert "classes (label: name): 0: 1, 1: 2, 2: 3" in listed.stdout and "note: " in listed.stdout
    trained = cli("train", "--set", f'data.dataset="{tmp_path / "one.npz"}"', "--set", "train.batch_size=8",
                  "--epochs", 4, "--out", tmp_path / "run")
    assert trained.returncode == 0, trained.stderr
    assert "note: " + d.notes[0] in trained.stdout
    from neuraterm.core.run import events
    from neuraterm.core.run.event_log import LogReader
    started = [e for e in LogReader(tmp_path / "run").read_new() if isinstance(e, events.RunStarted)]
    assert [e.notes for e in started] == [d.notes]  # a viewer reads the note from the run's log
    assert json.loads((tmp_path / "run" / "model.json").read_text())["class_names"] == ["1", "2", "3"]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["test_accuracy"] > 0.9 and report["macro_f1"] > 0.9  # an empty 4th class capped it at 0.75


def test_a_model_trained_when_labels_1_to_k_were_k_plus_1_classes_is_not_evaluated_wrong(tmp_path):
    """A folder from before the remapping (class 0 empty, K+1 outputs) must not be scored against
    labels shifted by one: eval says why, in one line, and leaves the folder as it was."""
    from neuraterm.core.data.dataset import Dataset
    path = tmp_path / "one.npz"
    np.savez(path, x=X, y=Y + 1)
    old = Dataset(str(path), X.reshape(240, -1), (Y + 1).astype(np.int64), None, None, ["0", "1", "2", "3"], (6, 6),
                  str(path), origin={"path": str(path), "format": "npz", "sha256": custom.digest(path, "npz")})
    config = Config()
    config.data.dataset, config.model.hidden, config.train.epochs = str(path), [8], 1
    Trainer(config, tmp_path / "run", data=prepare(old, seed=0)).run()
    before = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    result = cli("eval", tmp_path / "run")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "the model was trained on 4 classes but " in result.stderr and "now reads as 3 (" in result.stderr
    assert before == {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}


def test_an_empty_class_in_the_test_split_is_named_and_left_out_of_macro_f1(tmp_path):
    keep = Y != 2
    np.savez(tmp_path / "gap.npz", x=X, y=Y, x_test=X[keep][:40], y_test=Y[keep][:40],
             class_names=np.array(["cat", "dog", "bird"]))
    trained = cli("train", "--set", f'data.dataset="{tmp_path / "gap.npz"}"', "--set", "train.batch_size=8",
                  "--epochs", 4, "--out", tmp_path / "run")
    assert trained.returncode == 0, trained.stderr
    assert "note: the test split has no sample of class 'bird' (1 of 3): macro-F1 and balanced accuracy are " \
           "over the classes it holds" in trained.stdout
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["test_accuracy"] > 0.9 and report["macro_f1"] > 0.9  # 'bird' counted as F1 0 capped it at 0.67


def test_datasets_prints_the_class_names(tmp_path):
    np.savez(tmp_path / "named.npz", x=X, y=Y, class_names=np.array(["cat", "dog", "bird\x1b[31m"]))
    listed = cli("datasets", tmp_path / "named.npz")
    assert listed.returncode == 0, listed.stderr
    assert "classes (label: name): 0: cat, 1: dog, 2: bird\\x1b[31m" in listed.stdout and "\x1b" not in listed.stdout
    np.savez(tmp_path / "plain.npz", x=X, y=Y)
    assert "classes: 0, 1, 2\n" in cli("datasets", tmp_path / "plain.npz").stdout


def test_describe_reads_headers_and_labels_only(tmp_path):
    x, y = images()
    np.savez_compressed(tmp_path / "mine.npz", x=x, y=y, class_names=np.array(["a", "b", "c", "d"]))
    s = custom.describe(str(tmp_path / "mine.npz"))
    assert (s.classes, s.train, s.test, s.image_shape, s.format) == (4, 240, 0, (6, 6), "npz")


# -- splits, streaming, statistics -------------------------------------------------------------
def test_splits_of_your_data_are_stratified_rows_not_copies(tmp_path):
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(4), [600, 60, 200, 20])  # 30:1 imbalance
    x = rng.integers(0, 256, (len(y), 5)).astype(np.uint8)
    np.savez(tmp_path / "skewed.npz", x=x, y=y)
    d = registry.load(str(tmp_path / "skewed.npz"))
    p = prepare(d, 0.1, 0.2, seed=3)
    for split, fraction in ((p.train, 0.7), (p.val, 0.1), (p.test, 0.2)):
        assert split.images is d.x_train  # one array, indexed, never copied
        assert np.all(np.abs(np.bincount(split.y, minlength=4) - np.bincount(y) * fraction) <= 1)
    rows = np.concatenate([p.train.rows, p.val.rows, p.test.rows])
    assert len(np.unique(rows)) == len(y)
    np.testing.assert_array_equal(np.asarray(p.val.x), x[p.val.rows])


def test_pooling_a_joined_dataset_copies_nothing():
    x = np.arange(40, dtype=np.uint8).reshape(10, 4)
    y = np.arange(10) % 2
    d = registry.joined("t", x, y, 6, ["a", "b"], (4,), "here")
    pooled, labels = d.pooled()
    assert pooled is x and labels.tolist() == y.tolist()


def test_batches_of_rows_equal_the_batches_of_a_copy():
    rows = np.array([3, 4, 8, 11, 15, 20, 21])
    data = np.arange(30)
    copy_order, row_order = BatchOrder(7, 3, seed=5), BatchOrder(7, 3, seed=5, rows=rows)
    for _ in range(3):
        for a, b in zip(copy_order.epoch(), row_order.epoch()):
            np.testing.assert_array_equal(data[rows][a], data[b])


def test_streaming_from_a_memory_map_trains_exactly_like_memory(tmp_path):
    x, y = images(n=300)
    np.savez(tmp_path / "mine.npz", x=x, y=y)
    mapped = registry.load(str(tmp_path / "mine.npz"))
    in_memory = registry.Dataset("mine", x.reshape(300, -1).copy(), y.astype(np.int64), None, None, ["0", "1", "2"],
                                 (6, 6), "memory")
    assert isinstance(mapped.x_train, np.memmap) and not isinstance(in_memory.x_train, np.memmap)
    weights = []
    for dataset, name in ((mapped, "mapped"), (in_memory, "memory")):
        config = Config()
        config.train.epochs, config.train.batch_size, config.data.normalize = 2, 16, "standardize"
        trainer = Trainer(config, tmp_path / name, data=prepare(dataset, normalize="standardize"))
        trainer.run()
        weights.append(trainer.model.state_dict())
    assert all(np.array_equal(weights[0][k], weights[1][k]) for k in weights[1])


@pytest.mark.parametrize("kind", ["pixels", "offset floats"])
def test_chunked_statistics_equal_one_shot_float64(monkeypatch, kind):
    rng = np.random.default_rng(0)
    if kind == "pixels":
        x = rng.integers(0, 256, (1000, 12)).astype(np.uint8)
        reference = x / 255.0
    else:  # a large offset over a small spread: E[x^2] - E[x]^2 in float32 would cancel to noise
        x = (1e4 + rng.standard_normal((1000, 12))).astype(np.float32)
        reference = x.astype(np.float64)
    rows = np.sort(rng.permutation(1000)[:777])
    monkeypatch.setattr(normalize, "CHUNK_ROWS", 64)
    mean, var = moments(x, rows)
    np.testing.assert_allclose(mean, reference[rows].mean(0), rtol=1e-7)
    np.testing.assert_allclose(var, reference[rows].var(0), rtol=1e-5)


def test_standardize_divides_pixels_by_one_deviation_and_features_by_their_own():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (500, 10)).astype(np.uint8)
    pixels[:, 0] = 0
    pixels[0, 0] = 1  # a border pixel that is almost never lit: per-pixel deviation 0.0002
    fitted = Normalizer.fit("standardize", pixels)
    assert np.all(fitted.std == fitted.std[0]) and 0.25 < fitted.std[0] < 0.35
    noisy = fitted.standardize(gaussian(pixels / np.float32(255), 0.1, seed=1))
    clean = fitted(pixels)
    assert np.abs(noisy - clean)[:, 0].max() < 2  # was magnified about 1,000 times: ~400 standard units
    features = np.stack([rng.normal(0, 1000, 500), rng.normal(5, 0.01, 500), np.full(500, 7.0)], 1).astype(np.float32)
    fitted = Normalizer.fit("standardize", features)
    np.testing.assert_allclose(fitted.std[:2], [1000, 0.01], rtol=0.1)
    assert fitted.std[2] == 1  # constant: left unscaled
    np.testing.assert_allclose(Normalizer("scale")(features), features)


def test_noise_batch_by_batch_equals_noise_all_at_once():
    x = np.random.default_rng(0).random((50, 7), dtype=np.float32)
    stream = Gaussian(0.2, seed=4)
    np.testing.assert_array_equal(np.concatenate([stream(x[:13]), stream(x[13:])]), gaussian(x, 0.2, seed=4))
    assert gaussian(x * 100, 0.2, seed=4, clip=False).max() > 1


def test_idx_files_are_read_into_one_array_with_train_then_test(tmp_path):
    def idx_bytes(a):
        return bytes([0, 0, 8, a.ndim]) + np.array(a.shape, ">u4").tobytes() + a.astype(np.uint8).tobytes()
    rng = np.random.default_rng(0)
    train, test = rng.integers(0, 256, (9, 28, 28)), rng.integers(0, 256, (4, 28, 28))
    for name, array in (("train-images-idx3-ubyte", train), ("t10k-images-idx3-ubyte", test),
                        ("train-labels-idx1-ubyte", np.arange(9) % 10), ("t10k-labels-idx1-ubyte", np.arange(4))):
        (tmp_path / name).write_bytes(idx_bytes(array))
    d = registry.load("kmnist", tmp_path, download=False)
    assert d.joined.shape == (13, 784) and np.shares_memory(d.x_test, d.joined)
    np.testing.assert_array_equal(d.x_test, test.reshape(4, -1))
    with zipfile.ZipFile(tmp_path / "z.zip", "w"):
        pass


def test_a_class_seen_only_in_the_test_split_is_a_class(tmp_path):
    """Labels run 0..K-1 over both splits: a test label above every training label still gets an output,
    a row in the report and a place in listings (else the model could never predict it)."""
    x, y = images(90, classes=3)
    x_test, y_test = images(40, classes=4, seed=1)
    assert y.max() == 2 and y_test.max() == 3
    np.savez(tmp_path / "d.npz", x=x, y=y, x_test=x_test, y_test=y_test)
    np.savez(tmp_path / "only_test.npz", x=x, y=y, x_test=x_test[y_test == 3], y_test=y_test[y_test == 3])
    for name in ("d.npz", "only_test.npz"):
        spec = str(tmp_path / name)
        assert custom.load(spec).class_names == ["0", "1", "2", "3"]
        assert custom.describe(spec).classes == 4
        assert custom.describe(spec, validate=True).classes == 4
        assert prepare(custom.load(spec)).num_classes == 4


def test_the_pixel_deviation_is_one_root_mean_square_over_every_training_pixel():
    """NumPy's formula, written out: sqrt of the mean squared distance of every training pixel (in [0, 1])
    from its own pixel's mean. The mean of per-pixel deviations is a different number on such data."""
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.integers(0, 256, (300, 5)), rng.integers(100, 110, (300, 5)),
                        np.zeros((300, 2), np.int64)], axis=1).astype(np.uint8)
    x[7, -1] = 255  # one lit border pixel
    dataset = custom.from_arrays("d", {"x": x, "y": np.arange(300) % 3})
    prepared = prepare(dataset, normalize="standardize", seed=4)
    train = x[prepared.train.rows].astype(np.float64) / 255
    assert 150 < len(train) < 300  # the statistics come from the training rows only
    centred = train - train.sum(axis=0) / len(train)
    oracle = math.sqrt((centred ** 2).sum() / centred.size)
    mean_of_deviations = np.sqrt((centred ** 2).mean(axis=0)).mean()
    assert abs(mean_of_deviations - oracle) > 0.05 * oracle  # the two formulas really differ here
    std = prepared.normalizer.std
    assert std.shape == (12,) and np.allclose(std, oracle, rtol=1e-6, atol=0)
    np.testing.assert_allclose(prepared.normalizer.mean, train.mean(axis=0), rtol=1e-6)
