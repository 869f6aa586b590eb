"""Your own data's checks and records (`core/data/custom.py`), read without training: what counts as a
path, where it is found, its format, its content hash (against hashlib over the bytes), each validation
and its exact one-line message, how labels 1..K are read, and the cheap listing against the full read."""
import hashlib
import os

import numpy as np
import pytest

from neuraterm.core.data import custom
from neuraterm.core.errors import NeuratermError

rng = np.random.default_rng(3)
X = rng.integers(0, 256, (12, 2, 3)).astype(np.uint8)
Y = np.arange(12) % 3


# -- naming, finding, format -------------------------------------------------------------------
@pytest.mark.parametrize("name,is_path", [
    ("mnist", False), ("fashion-mnist", False), ("data/x", True), ("~/mine", True), ("./mine", True),
    (".hidden", True), ("mine.npz", True), ("MINE.NPZ", True), ("t.tsv", True), ("c.csv#species", True),
    ("c.CSV#kind", True), ("mine.npy", False), ("csv", False),
])
def test_a_path_is_told_from_a_registry_name(name, is_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert custom.is_path(name) is is_path


def test_an_existing_name_without_a_suffix_is_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mydata").mkdir()
    assert custom.is_path("mydata") and not custom.is_path("yourdata")


def test_locate_falls_back_to_the_recorded_path_and_says_where_the_model_was_trained(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "d.csv"
    data.write_text("0,1\n1,2\n")
    assert custom.locate("d.csv#kind") == (data, "kind")
    assert custom.locate("gone.csv", {"path": str(data)}) == (data, "")
    with pytest.raises(NeuratermError) as err:
        custom.locate("gone.csv", {"path": str(tmp_path / "also-gone.csv")})
    assert str(err.value) == f"gone.csv: no such file or folder (the model was trained on {tmp_path / 'also-gone.csv'})"
    for recorded in (None, {}, {"path": ""}, {"path": 5}, {"path": None}, ["x"]):  # "" is not the working directory
        with pytest.raises(NeuratermError) as err:
            custom.locate("gone.csv", recorded)
        assert str(err.value) == "gone.csv: no such file or folder"


def test_format_of_each_layout(tmp_path):
    (tmp_path / "arrays").mkdir()
    np.save(tmp_path / "arrays" / "x.npy", X)
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "y.npy").write_bytes(b"")  # no x.npy: a folder of images
    for name in ("a.npz", "b.NPZ", "c.csv", "d.TSV", "e.npy", "f.txt", "g.bin"):
        (tmp_path / name).write_bytes(b"")
    assert [custom.format_of(tmp_path / n) for n in ("arrays", "pics", "a.npz", "b.NPZ", "c.csv", "d.TSV")] == \
        ["npy", "images", "npz", "npz", "csv", "csv"]
    with pytest.raises(NeuratermError, match=r"e.npy: a .npy file holds one array; put x and y in an .npz "
                                             r"\(numpy.savez\) or x.npy and y.npy in a folder$"):
        custom.format_of(tmp_path / "e.npy")
    for other in ("f.txt", "g.bin"):
        with pytest.raises(NeuratermError, match=r": not a dataset neuraterm reads \(.npz, .csv, a folder"):
            custom.format_of(tmp_path / other)


# -- the content hash ------------------------------------------------------------------------
def test_digest_of_a_file_is_the_sha256_of_its_bytes(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"0,1\n1,2\n" * 1000)
    assert custom.digest(path, "csv") == hashlib.sha256(path.read_bytes()).hexdigest()
    np.savez(tmp_path / "a.npz", x=X, y=Y)
    assert custom.digest(tmp_path / "a.npz", "npz") == hashlib.sha256((tmp_path / "a.npz").read_bytes()).hexdigest()


def test_digest_of_a_folder_covers_each_files_name_and_bytes_in_a_fixed_order(tmp_path):
    folder = tmp_path / "arrays"
    folder.mkdir()
    for key, array in (("y", Y), ("x", X), ("class_names", np.array(["a", "b", "c"]))):
        np.save(folder / f"{key}.npy", array)
    (folder / "notes.npy").write_bytes(b"not part of the dataset")
    h = hashlib.sha256()
    for key in ("x", "y", "class_names"):
        h.update(f"{key}.npy".encode() + b"\0" + (folder / f"{key}.npy").read_bytes())
    assert custom.digest(folder, "npy") == h.hexdigest()
    assert custom._files(folder, "npy") == [folder / "x.npy", folder / "y.npy", folder / "class_names.npy"]


def test_the_arrays_of_a_folder_are_the_known_files_present(tmp_path):
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", Y)
    np.save(tmp_path / "z.npy", Y)
    assert sorted(custom._arrays(tmp_path, "npy")) == ["x", "y"]
    only = custom._arrays(tmp_path, "npy", ("y", "x_test"))
    assert list(only) == ["y"] and only["y"].tolist() == Y.tolist()


# -- validation --------------------------------------------------------------------------------
def error(arrays, name="d"):
    with pytest.raises(NeuratermError) as err:
        custom.from_arrays(name, arrays)
    return str(err.value)


def test_features_are_flattened_and_pixels_kept_as_they_are():
    d = custom.from_arrays("d", {"x": X, "y": Y})
    assert np.shares_memory(d.x_train, X)  # pixels are not copied: a memory map stays on the disk
    assert d.x_train.dtype == np.uint8 and d.x_train.shape == (12, 6) and d.image_shape == (2, 3)
    np.testing.assert_array_equal(d.x_train, X.reshape(12, 6))
    assert d.y_train.dtype == np.int64 and d.y_train.tolist() == Y.tolist()
    assert d.class_names == ["0", "1", "2"] and d.x_test is None and d.y_test is None and d.notes == []
    four = custom.from_arrays("d", {"x": X.reshape(12, 2, 3, 1), "y": Y}, image_shape=(6, 1))
    assert four.x_train.shape == (12, 6) and four.image_shape == (6, 1)


@pytest.mark.parametrize("elements", [4, 7, 600])  # one row of 6 values a block, or all of them
@pytest.mark.parametrize("dtype", [np.int64, np.uint16, np.int8, bool])
def test_other_integers_in_0_255_become_pixels_checked_block_by_block(dtype, elements, monkeypatch):
    monkeypatch.setattr(custom, "CHECK_ELEMENTS", elements)
    x = (X % 2).astype(dtype) if dtype is bool else X.astype(dtype) % 100
    d = custom.from_arrays("d", {"x": x, "y": Y})
    assert d.x_train.dtype == np.uint8
    np.testing.assert_array_equal(d.x_train, np.asarray(x, np.int64).reshape(12, 6))


@pytest.mark.parametrize("bad", [-1, 256])
def test_integers_outside_0_255_are_refused_wherever_they_are(bad, monkeypatch):
    monkeypatch.setattr(custom, "CHECK_ELEMENTS", 6)
    x = X.astype(np.int64)
    x[11, 1, 2] = bad  # the last value of the last block
    assert error({"x": x, "y": Y}) == ("d: x holds integers outside 0..255; store pixels as uint8 or features as "
                                       "float")
    x = X.astype(np.int64)
    x[:, 0, 0] = [0, 255] * 6  # both ends are pixels
    assert custom.from_arrays("d", {"x": x, "y": Y}).x_train[:2, 0].tolist() == [0, 255]


@pytest.mark.parametrize("elements", [4, 6, 30, 600])  # 4: a row wider than a block is a block of its own
def test_the_first_non_finite_row_is_named_whatever_the_block(elements, monkeypatch):
    monkeypatch.setattr(custom, "CHECK_ELEMENTS", elements)
    x = X.astype(np.float32)
    x[7, 1, 1] = np.inf
    x[9, 0, 0] = np.nan
    assert error({"x": x, "y": Y}) == "d: x holds NaN or infinite values (first in row 7)"
    x[0, 0, 2] = -np.inf
    assert error({"x": x, "y": Y}) == "d: x holds NaN or infinite values (first in row 0)"
    x = X.astype(np.float64) / 255
    d = custom.from_arrays("d", {"x": x, "y": Y})
    assert d.x_train.dtype == np.float64 and np.array_equal(d.x_train, x.reshape(12, 6))


def test_a_row_of_no_values_is_still_checked_in_blocks(monkeypatch):
    monkeypatch.setattr(custom, "CHECK_ELEMENTS", 4)
    d = custom.from_arrays("d", {"x": np.zeros((12, 0), np.float32), "y": Y})
    assert d.x_train.shape == (12, 0)


@pytest.mark.parametrize("arrays,message", [
    ({"y": Y}, "no array 'x' (found: y)"),
    ({}, "no array 'x' (found: none)"),
    ({"x": X, "z": Y, "a": Y}, "no array 'y' (found: a, x, z)"),
    ({"x": X, "y": Y, "x_test": X}, "x_test and y_test go together; found only x_test"),
    ({"x": X, "y": Y, "y_test": Y}, "x_test and y_test go together; found only y_test"),
    ({"x": X[:, 0, 0], "y": Y}, "x must be N x D, N x H x W or N x H x W x C with N >= 1; got shape (12,)"),
    ({"x": X[:0], "y": Y[:0]}, "x must be N x D, N x H x W or N x H x W x C with N >= 1; got shape (0, 2, 3)"),
    ({"x": X.reshape(12, 1, 2, 3, 1), "y": Y}, "x must be N x D, N x H x W or N x H x W x C with N >= 1; "
                                               "got shape (12, 1, 2, 3, 1)"),
    ({"x": X.astype(np.complex64), "y": Y}, "x has dtype complex64; expected uint8 pixels or float features"),
    ({"x": X, "y": Y.reshape(3, 4)}, "y must be a 1-D array of integer class labels; got int64 of shape (3, 4)"),
    ({"x": X, "y": Y.astype(bool)}, "y must be a 1-D array of integer class labels; got bool of shape (12,)"),
    ({"x": X, "y": np.array(3)}, "y must be a 1-D array of integer class labels; got int64 of shape ()"),
    ({"x": X, "y": Y[:11]}, "x has 12 rows but y has 11 labels"),
    ({"x": X[:11], "y": Y}, "x has 11 rows but y has 12 labels"),
    ({"x": X[:, :1], "y": Y, "x_test": X[:4], "y_test": Y[:4]}, "x_test rows are 6 uint8 values, x rows 3 uint8"),
    ({"x": X.astype(np.float32), "y": Y, "x_test": X[:4], "y_test": Y[:4]},
     "x_test rows are 6 uint8 values, x rows 6 float32"),
    ({"x": X, "y": Y, "x_test": X[:4], "y_test": Y[:3]}, "x_test has 4 rows but y_test has 3 labels"),
    ({"x": X, "y": Y, "x_test": X[:4], "y_test": Y[:4] - 1}, "y_test holds negative labels (-1); labels run 0..K-1"),
    ({"x": X, "y": Y - 2}, "y holds negative labels (-2); labels run 0..K-1"),
    ({"x": X, "y": Y, "x_test": X[:4].astype(np.float32), "y_test": Y[:4]},
     "x_test rows are 6 float32 values, x rows 6 uint8"),
    ({"x": X, "y": Y, "x_test": X[:4, :1], "y_test": Y[:4]}, "x_test rows are 3 uint8 values, x rows 6 uint8"),
    ({"x": X, "y": Y, "class_names": np.array([["a", "b", "c"]])}, "class_names must be a 1-D array of strings"),
    ({"x": X, "y": Y, "class_names": np.array([0.5, 1.5, 2.5])}, "class_names must be a 1-D array of strings"),
    ({"x": X, "y": Y, "class_names": np.array("abc")}, "class_names must be a 1-D array of strings"),
    ({"x": X, "y": Y * 0}, "one class only; a classifier needs at least two"),
    ({"x": X, "y": Y, "class_names": np.array(["a", "b"])}, "label 2 but only 2 class names (labels run 0..K-1)"),
    ({"x": X, "y": Y + 1, "class_names": np.array(["a", "b"])}, "label 3 but only 2 class names (labels run 0..K-1)"),
    ({"x": X, "y": Y * 4}, "no sample has label 1, 2, 3, 5, 6, ...; labels must run 0..8 with a sample of every "
                           "class (renumber them, or drop the unused class names)"),
    ({"x": X, "y": np.where(Y == 2, 12, Y)}, "no sample has label 2, 3, 4, 5, 6, ...; labels must run 0..12 with a "
                                             "sample of every class (renumber them, or drop the unused class names)"),
    ({"x": X, "y": np.where(np.arange(12) == 0, 8, Y)}, "no sample has label 3, 4, 5, 6, 7; labels must run 0..8 "
                                                        "with a sample of every class (renumber them, or drop the "
                                                        "unused class names)"),
    ({"x": X, "y": np.where(Y == 2, 13, Y)}, "label 13 with 12 samples; labels must run 0..K-1 with a sample of "
                                             "every class"),
    ({"x": X, "y": Y, "class_names": np.array(list("abcdefg"))},
     "no sample has label 3 ('d'), 4 ('e'), 5 ('f'), 6 ('g'); labels must run 0..6 with a sample of every class "
     "(renumber them, or drop the unused class names)"),
    ({"x": X, "y": Y, "class_names": np.array(["a", "b", "c", "d", "e"])},
     "no sample has label 3 ('d'), 4 ('e'); labels must run 0..4 with a sample of every class (renumber them, or "
     "drop the unused class names)"),
])
def test_each_check_says_what_is_wrong_in_one_line(arrays, message):
    assert error(arrays) == "d: " + message


def test_labels_count_up_to_the_number_of_samples_train_and_test_together():
    y = np.where(Y == 2, 16, Y)  # 17 classes: more than 12 + 3 samples
    d = custom.from_arrays("d", {"x": X, "y": np.arange(12), "x_test": X[:4], "y_test": np.array([12, 13, 14, 15])})
    assert len(d.class_names) == 16 and d.y_test.tolist() == [12, 13, 14, 15]
    assert error({"x": X, "y": y, "x_test": X[:3], "y_test": Y[:3]}).startswith("d: label 16 with 15 samples;")


def test_wide_rows_with_a_test_split():
    x = rng.random((12, 300))
    d = custom.from_arrays("d", {"x": x, "y": Y, "x_test": x[:4] * 2, "y_test": Y[:4]})
    assert d.x_test.shape == (4, 300) and np.array_equal(d.x_test, x[:4] * 2)


def test_hundreds_of_rows_and_classes():
    """Past 256, CPython's ints are not shared objects: counts are compared by value."""
    x = rng.random((300, 2))
    d = custom.from_arrays("d", {"x": x, "y": np.arange(1, 301), "class_names": np.array([f"c{i}" for i in range(300)])})
    assert len(d.class_names) == 300 and d.y_train.tolist() == list(range(300)) and len(d.notes) == 1


def test_a_class_present_only_in_the_test_split_counts():
    d = custom.from_arrays("d", {"x": X, "y": Y % 2, "x_test": X[:3], "y_test": np.array([0, 1, 2])})
    assert d.class_names == ["0", "1", "2"] and d.y_test.tolist() == [0, 1, 2]
    d = custom.from_arrays("d", {"x": X, "y": Y, "x_test": X[:2], "y_test": np.array([1, 0])})
    assert d.class_names == ["0", "1", "2"] and d.y_test.tolist() == [1, 0]


def test_class_names_of_any_string_or_integer_kind():
    for names in (np.array(["a", "b", "c"]), np.array([b"a", b"b", b"c"]), np.array([10, 20, 30]),
                  np.array([10, 20, 30], np.uint8)):
        d = custom.from_arrays("d", {"x": X, "y": Y, "class_names": names})
        assert d.class_names == [str(v) for v in names]


# -- labels 1..K ----------------------------------------------------------------------------------
def test_labels_1_to_k_read_as_0_to_k_minus_1_with_a_note_in_both_splits():
    d = custom.from_arrays("d", {"x": X, "y": Y + 1, "x_test": X[:4], "y_test": Y[:4] + 1})
    assert d.y_train.tolist() == Y.tolist() and d.y_test.tolist() == Y[:4].tolist()
    assert d.class_names == ["1", "2", "3"]
    assert d.notes == ["d: labels run 1..3 (no 0); read as classes 0..2 (label k is class k-1)"]
    named = custom.from_arrays("d", {"x": X, "y": Y + 1, "class_names": np.array(["cat", "dog", "owl"])})
    assert named.class_names == ["cat", "dog", "owl"] and named.y_train.tolist() == Y.tolist()
    assert named.notes == ["d: labels run 1..3 (no 0); read as classes 0..2 (label k is class k-1, named "
                           "'cat'..'owl')"]
    two = custom.from_arrays("d", {"x": X, "y": Y % 2 + 1})
    assert two.class_names == ["1", "2"] and two.y_train.tolist() == (Y % 2).tolist()


def test_what_is_not_labels_1_to_k_is_not_remapped():
    # a single label 1: not "1..K" with K >= 2, so class 0 is an empty class
    assert error({"x": X, "y": np.ones(12, np.int64)}).startswith("d: no sample has label 0;")
    # a gap after 1: class 0 and class 2 empty
    assert error({"x": X, "y": np.where(Y == 1, 3, Y + 1) * (Y != 0) + (Y == 0)}).startswith("d: no sample has label 0")
    # K + 1 names for labels 1..K: the names say there is a class 0
    assert error({"x": X, "y": Y + 1, "class_names": np.array(["z", "a", "b", "c"])}) == \
        ("d: no sample has label 0 ('z'); labels must run 0..3 with a sample of every class (renumber them, or drop "
         "the unused class names)")
    # a test split that holds label 0
    d = custom.from_arrays("d", {"x": X, "y": Y + 1, "x_test": X[:4], "y_test": np.array([0, 1, 2, 3])})
    assert d.class_names == ["0", "1", "2", "3"] and d.notes == [] and d.y_train.tolist() == (Y + 1).tolist()


# -- reading and recording -------------------------------------------------------------------------
def test_load_records_path_format_hash_and_column(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "f.csv"
    path.write_text("a,kind\n1,x\n2,y\n3,x\n")
    d = custom.load("f.csv#kind")
    assert d.name == "f.csv#kind" and d.source == str(path)
    assert d.origin == {"path": str(path), "format": "csv", "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                        "label_column": "kind"}
    assert d.class_names == ["x", "y"] and d.x_train.tolist() == [[1], [2], [3]]
    np.savez(tmp_path / "a.npz", x=X, y=Y)
    assert "label_column" not in custom.load("a.npz").origin
    with pytest.raises(NeuratermError, match=r"a.npz: '#kind' names a CSV label column, but this is not a CSV file$"):
        custom.load("a.npz#kind")


def test_changed_data_is_refused_and_unrecorded_hashes_are_not_checked(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("0,1\n1,2\n")
    now = hashlib.sha256(path.read_bytes()).hexdigest()
    custom.load(str(path), {"path": str(path), "sha256": now})
    custom.load(str(path), {"path": str(path)})
    custom.load(str(path), {"path": str(path), "sha256": ""})
    for other in ("00" * 32, "ff" * 32):  # below and above the new hash
        with pytest.raises(NeuratermError, match="changed since this model was trained on it"):
            custom.load(str(path), {"path": str(path), "sha256": other})
    with pytest.raises(NeuratermError) as err:
        custom.load(str(path), {"path": str(path), "sha256": "ab" * 32})
    assert str(err.value) == (f"{path} changed since this model was trained on it (sha256 abababababab... then, "
                              f"{now[:12]}... now); put the original back or train a new model")


def test_a_folder_of_arrays_reads_like_an_archive(tmp_path):
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", Y + 1)
    np.save(tmp_path / "x_test.npy", X[:3])
    np.save(tmp_path / "y_test.npy", Y[:3] + 1)
    d = custom.load(str(tmp_path))
    assert d.origin["format"] == "npy" and d.y_test.tolist() == [0, 1, 2] and d.image_shape == (2, 3)


# -- the listing -----------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["npz", "npy"])
@pytest.mark.parametrize("case", ["plain", "one_based", "named", "test_split", "one_based_in_test"])
def test_the_cheap_listing_agrees_with_the_full_read(tmp_path, layout, case):
    arrays = {"x": X, "y": Y}
    if case == "one_based":
        arrays["y"] = Y + 1
    if case == "named":
        arrays["class_names"] = np.array(["a", "b", "c", "d"])
        arrays["y"] = np.arange(12) % 4
    if case == "test_split":
        arrays.update(x_test=X[:5], y_test=np.array([0, 1, 2, 3, 3]))
    if case == "one_based_in_test":
        arrays.update(y=Y + 2, x_test=X[:2], y_test=np.array([1, 2]))
    if layout == "npz":
        path = tmp_path / "d.npz"
        np.savez(path, **arrays)
    else:
        path = tmp_path / "d"
        path.mkdir()
        for key, array in arrays.items():
            np.save(path / f"{key}.npy", array)
    cheap = custom.describe(str(path))
    full = custom.describe(str(path), validate=True)
    assert (cheap.classes, cheap.train, cheap.test, cheap.image_shape, cheap.format, cheap.path) == \
        (full.classes, full.train, full.test, full.image_shape, full.format, full.path) == \
        (len(full.class_names), 12, len(arrays.get("y_test", ())), (2, 3), layout, str(path))
    assert cheap.class_names == () and full.class_names and cheap.name == full.name == str(path)


def test_the_cheap_listing_counts_labels_from_0_unless_they_start_at_1(tmp_path):
    """Labels 2..4: the listing says 5 classes, as the labels do; the full read refuses the empty 0 and 1."""
    np.savez(tmp_path / "d.npz", x=X, y=Y + 2)
    assert custom.describe(str(tmp_path / "d.npz")).classes == 5
    with pytest.raises(NeuratermError, match="no sample has label 0, 1;"):
        custom.describe(str(tmp_path / "d.npz"), validate=True)


def test_the_listing_of_arrays_without_x_or_y(tmp_path):
    np.savez(tmp_path / "d.npz", x=X)
    with pytest.raises(NeuratermError, match=r"d.npz: needs arrays 'x' and 'y' \(found: x\)$"):
        custom.describe(str(tmp_path / "d.npz"))
    np.savez(tmp_path / "e.npz", y=Y, z=Y)
    with pytest.raises(NeuratermError, match=r"e.npz: needs arrays 'x' and 'y' \(found: y, z\)$"):
        custom.describe(str(tmp_path / "e.npz"))
    np.savez(tmp_path / "f.npz", x=X, y=Y[:0])
    assert custom.describe(str(tmp_path / "f.npz")).classes == 0


def test_the_listing_of_a_csv(tmp_path):
    (tmp_path / "f.csv").write_text("kind,a,b\nx,1,2\ny,3,4\nz,5,6\n")
    s = custom.describe(str(tmp_path / "f.csv"))
    assert (s.classes, s.train, s.test, s.image_shape, s.format) == (3, 3, 0, (2,), "csv")
    full = custom.describe(str(tmp_path / "f.csv"), validate=True)
    assert full.class_names == ("x", "y", "z") and full.notes == ()


def test_the_listing_of_an_image_folder_counts_files_and_reads_one_size(tmp_path, monkeypatch):
    Image = pytest.importorskip("PIL.Image", reason="the `images` extra (Pillow) is not installed; CI installs it")
    sizes = {"cat": [(5, 4), (7, 4)], "dog": [(6, 4), (6, 4), (6, 4)]}  # the size is read from the first file
    for label, found in sizes.items():
        (tmp_path / "pics" / label).mkdir(parents=True)
        for i, size in enumerate(found):
            Image.new("L", size).save(tmp_path / "pics" / label / f"{i}.png")
    s = custom.describe(str(tmp_path / "pics"))
    assert (s.classes, s.train, s.test, s.image_shape, s.format) == (2, 5, 0, (4, 5), "images")
    assert custom._files(tmp_path / "pics", "images") == sorted((tmp_path / "pics").rglob("*.png"))
    for file in (tmp_path / "pics").rglob("*.png"):
        Image.new("RGB", (5, 4)).save(file)
    assert custom.describe(str(tmp_path / "pics")).image_shape == (4, 5, 3)
    with monkeypatch.context() as patch:  # a decompression bomb is not opened: its size stays unknown
        patch.setattr(Image, "MAX_IMAGE_PIXELS", 5)
        assert custom.describe(str(tmp_path / "pics")).image_shape == ()
    with monkeypatch.context() as patch:  # only the bomb is passed over: another error from Pillow is not hidden
        patch.setattr(Image, "open", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("Pillow broke")))
        with pytest.raises(RuntimeError, match="Pillow broke"):
            custom.describe(str(tmp_path / "pics"))
    (tmp_path / "pics" / "cat" / "0.png").write_bytes(b"not a png")
    assert custom.describe(str(tmp_path / "pics")).image_shape == ()
    assert os.path.exists(tmp_path / "pics" / "cat" / "0.png")
