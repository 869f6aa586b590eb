"""The CSV reader (`core/data/csv_table.py`) against files written here and values worked out by hand:
delimiters, headers, label columns, quoting, blocks, the array's sizing, pixels against floats, class
order, and each error's line number and wording."""
import math
import warnings

import numpy as np
import pytest

from neuraterm.core.data import csv_table
from neuraterm.core.errors import NeuratermError


def write(tmp_path, text, name="d.csv", mode="w"):
    path = tmp_path / name
    if mode == "wb":
        path.write_bytes(text)
    else:
        path.write_text(text, newline="")
    return path


def read(tmp_path, text, column="", **kw):
    x, y, names = csv_table.read(write(tmp_path, text, **kw), column)
    return x, y.tolist(), names


# -- the spec and the layout ---------------------------------------------------------------
def test_split_spec_takes_the_column_after_the_last_hash_unless_the_whole_name_is_a_file(tmp_path):
    assert csv_table.split_spec("data.csv#species") == ("data.csv", "species")
    assert csv_table.split_spec("a#b.csv#kind") == ("a#b.csv", "kind")
    assert csv_table.split_spec("plain.csv") == ("plain.csv", "")
    odd = tmp_path / "odd#name.csv"
    odd.write_text("0,1\n")
    assert csv_table.split_spec(str(odd)) == (str(odd), "")


def test_is_number_is_what_float_accepts():
    assert all(csv_table._is_number(v) for v in ("1", "-2.5", "1e3", " 7 ", "nan", "inf"))
    assert not any(csv_table._is_number(v) for v in ("", "cat", "1,5", "0x10"))


@pytest.mark.parametrize("first,delimiter", [
    ("0,1,2", ","), ("0\t1\t2", "\t"), ("0;1;2", ";"), ("0\t1;2", "\t"), ("0,1\t2", ","), ("0,1;2", ","),
    ("012", ","), ("a b c", ","),
])
def test_the_delimiter_comes_from_the_first_line(first, delimiter):
    assert csv_table._layout("f.csv", first, "")[0] == delimiter


def test_a_header_is_a_first_line_whose_features_are_not_all_numbers():
    assert csv_table._layout("f.csv", "label,a,b", "") == (",", True, ["label", "a", "b"], 0)
    assert csv_table._layout("f.csv", "label,1,b", "") == (",", True, ["label", "1", "b"], 0)
    assert csv_table._layout("f.csv", "label,a,2", "") == (",", True, ["label", "a", "2"], 0)
    # a word in the label column alone is a class name, not a header
    assert csv_table._layout("f.csv", "cat,1,2", "") == (",", False, [], 0)
    assert csv_table._layout("f.csv", "x;y;kind", "kind") == (";", True, ["x", "y", "kind"], 2)


def test_a_missing_label_column_lists_the_first_twelve_columns():
    with pytest.raises(NeuratermError) as err:
        csv_table._layout("f.csv", "a,b,c", "kind")
    assert str(err.value) == "f.csv: no column named 'kind' in the first line (columns: a, b, c)"
    twelve = ",".join(f"c{i}" for i in range(12))
    with pytest.raises(NeuratermError) as err:
        csv_table._layout("f.csv", twelve, "kind")
    assert str(err.value) == f"f.csv: no column named 'kind' in the first line (columns: {twelve.replace(',', ', ')})"
    with pytest.raises(NeuratermError) as err:
        csv_table._layout("f.csv", twelve + ",c12", "kind")
    assert str(err.value).endswith(f"(columns: {twelve.replace(',', ', ')}, ...)")


# -- reading -------------------------------------------------------------------------------
def test_a_wide_file_like_mnist_in_csv(tmp_path):
    """785 columns: a label and 28 x 28 pixels (past 256, field counts are compared by value)."""
    rows = np.random.default_rng(0).integers(0, 256, (5, 785))
    rows[:, 0] = [0, 1, 2, 0, 1]
    x, y, names = read(tmp_path, "".join(",".join(map(str, r)) + "\n" for r in rows))
    assert x.dtype == np.uint8 and x.shape == (5, 784) and np.array_equal(x, rows[:, 1:])
    assert y == [0, 1, 2, 0, 1] and names == ["0", "1", "2"]
    header = ",".join(f"p{i}" for i in range(784)) + ",digit\n"  # the label last, by name: column 784
    x, y, _ = read(tmp_path, header + "".join(",".join(map(str, [*r[1:], r[0]])) + "\n" for r in rows), "digit")
    assert np.array_equal(x, rows[:, 1:]) and y == [0, 1, 2, 0, 1]


def test_semicolons_tabs_crlf_and_a_byte_order_mark(tmp_path):
    x, y, names = read(tmp_path, "\ufefflabel;a;b\r\n1;0.5;2\r\n0;1.5;3\r\n", name="s.csv")
    assert names == ["0", "1"] and y == [1, 0] and x.dtype == np.float32
    np.testing.assert_array_equal(x, [[0.5, 2], [1.5, 3]])
    x, y, names = read(tmp_path, "\ufeffkind\tv\nb\t3\na\t4\n", column="kind", name="t.tsv")
    assert names == ["a", "b"] and y == [1, 0] and x.tolist() == [[3], [4]]


def test_a_label_in_the_middle_and_quoted_fields(tmp_path):
    x, y, names = read(tmp_path, 'a,kind,b\n1,"x, y",2\n3,z,4\n5,"x, y",6\n', column="kind")
    assert names == ["x, y", "z"] and y == [0, 1, 0]
    assert x.tolist() == [[1, 2], [3, 4], [5, 6]]
    x, y, names = read(tmp_path, 'a,kind,b,c\n1,p,2,3\n4,q,5,6\n', column="kind")
    assert names == ["p", "q"] and x.tolist() == [[1, 2, 3], [4, 5, 6]]
    x, y, names = read(tmp_path, 'a,b,kind\n1,2,p\n4,5,q\n', column="kind")
    assert names == ["p", "q"] and y == [0, 1] and x.tolist() == [[1, 2], [4, 5]]


def test_labels_lose_surrounding_spaces_and_quotes(tmp_path):
    _, y, names = read(tmp_path, ' cat ,1\n"dog",2\ncat,3\n')
    assert names == ["cat", "dog"] and y == [0, 1, 0]


def test_numeric_labels_sort_as_numbers_and_words_as_text(tmp_path):
    _, y, names = read(tmp_path, "10,1\n-1,2\n2,3\n1.5,4\n2,5\n")
    assert names == ["-1", "1.5", "2", "10"] and y == [3, 0, 2, 1, 2]
    _, y, names = read(tmp_path, "b10,1\nb2,2\na,3\n")
    assert names == ["a", "b10", "b2"] and y == [1, 2, 0]
    _, y, names = read(tmp_path, "3,1\n1,2\n2,3\n")  # already in order either way
    assert names == ["1", "2", "3"] and y == [2, 0, 1]


@pytest.mark.parametrize("block", [1, 2, 3, 4096])
def test_blocks_of_any_size_read_the_same_rows_in_order(tmp_path, monkeypatch, block):
    monkeypatch.setattr(csv_table, "BLOCK", max(block, 2))
    rows = [[i % 3, i, 2 * i, 255 - i] for i in range(11)]
    text = "label,a,b,c\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)
    x, y, names = read(tmp_path, text)
    assert x.dtype == np.uint8 and x.tolist() == [r[1:] for r in rows] and y == [r[0] for r in rows]
    x, y, _ = read(tmp_path, text[len("label,a,b,c\n"):].rstrip("\n"))  # no header, no final newline
    assert x.tolist() == [r[1:] for r in rows] and y == [r[0] for r in rows]


@pytest.mark.parametrize("trailing", ["", "\n", "\n\n\n"])
def test_the_array_is_sized_from_the_bytes_even_at_the_tightest(tmp_path, trailing):
    """Three one-digit fields are 6 bytes a line with its newline: 2 x width. 100 such lines fit exactly."""
    lines = [f"{i % 2},{i % 10},{(i * 7) % 10}" for i in range(100)]
    x, y, _ = read(tmp_path, "\n".join(lines) + trailing)
    assert x.shape == (100, 2) and y == [i % 2 for i in range(100)]
    assert x[:, 0].tolist() == [i % 10 for i in range(100)] and x[:, 1].tolist() == [(i * 7) % 10 for i in range(100)]
    x, _, _ = read(tmp_path, "\n".join(["0,1,2"] * 99 + ["1,1,2"]) + trailing)
    assert len(x) == 100


def test_blank_lines_do_not_inflate_the_array(tmp_path):
    """1,000 blank lines between two rows: the array is sized from the bytes (1,012 / 6 + 1 rows), not the 1,003
    lines, and what is returned is a view of the first two rows of it."""
    x, y, _ = read(tmp_path, "0,1,2\n" + "\n" * 1000 + "1,3,4\n")
    assert x.tolist() == [[1, 2], [3, 4]] and y == [0, 1]
    assert x.base is not None and x.base.shape == (1012 // 6 + 1, 2)


def test_a_file_with_carriage_returns_alone_is_refused_in_one_line(tmp_path):
    """Old Mac line ends: the byte count sees one line, the reader several; it says so rather than crash."""
    message = _error(tmp_path, "0,1,2\r1,3,4\r0,5,6\r")
    assert message == "more data lines than its size allows"


@pytest.mark.parametrize("value,pixels", [("0", True), ("255", True), ("256", False), ("-1", False),
                                          ("0.5", False), ("254.9", False), ("1e2", True)])
def test_pixels_are_integers_from_0_to_255(tmp_path, value, pixels):
    x, _, _ = read(tmp_path, f"0,7,{value}\n1,255,0\n")
    assert x.dtype == (np.uint8 if pixels else np.float32)
    assert x.tolist() == [[7, np.float32(value)], [255, 0]]


def test_reading_features_raises_no_numpy_warning(tmp_path):
    """A warning printed over the TUI, or an error under `np.errstate(all="raise")`, for a well-formed file."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x, _, _ = read(tmp_path, "0,0.5,-2\n1,300,7\n")
    assert x.tolist() == [[0.5, -2], [300, 7]]


def test_a_later_block_of_floats_widens_what_was_read_as_pixels(tmp_path, monkeypatch):
    monkeypatch.setattr(csv_table, "BLOCK", 2)
    x, y, _ = read(tmp_path, "0,1,2\n1,3,255\n0,4,5\n1,6.25,-7\n0,8,9\n")
    assert x.dtype == np.float32
    assert x.tolist() == [[1, 2], [3, 255], [4, 5], [6.25, -7], [8, 9]] and y == [0, 1, 0, 1, 0]


def test_widen_copies_only_the_rows_filled_so_far():
    x = np.array([[1, 2], [3, 4], [5, 6]], np.uint8)
    wide = csv_table._widen(x, 2)
    assert wide.dtype == np.float32 and wide.shape == (3, 2) and wide[:2].tolist() == [[1, 2], [3, 4]]


def test_blank_lines_anywhere_are_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(csv_table, "BLOCK", 3)
    x, y, _ = read(tmp_path, "a,b\n\n1,2\n \n\n\n\n\n0,3\n\n")
    assert x.tolist() == [[2], [3]] and y == [1, 0]


# -- errors --------------------------------------------------------------------------------
def _error(tmp_path, text, column="", **kw):
    with pytest.raises(NeuratermError) as err:
        csv_table.read(write(tmp_path, text, **kw), column)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(tmp_path / kw.get("name", "d.csv")) + ": ")
    return message.split(": ", 1)[1]


def test_an_unreadable_path_is_named(tmp_path):
    with pytest.raises(NeuratermError, match=r"none.csv: cannot read \(No such file or directory\)$"):
        csv_table.read(tmp_path / "none.csv")
    with pytest.raises(NeuratermError, match=r": cannot read \(Is a directory\)$"):
        csv_table.read(tmp_path)


@pytest.mark.parametrize("text,message", [
    ("", "empty CSV file"),
    ("   \n1,2\n", "empty CSV file"),
    ("label\n1\n", "one column only; a CSV dataset needs a label column and features"),
    ("label,a\n", "no data lines"),
    ("label,a\n\n\n", "no data lines"),
    ("1,2\n,3\n", "line 2: empty label"),
    ("y,a\n1,2\n0,3\n\"\",4\n", "line 4: empty label"),
    ("y,a\n1,2\n 0,3\n  ,4\n", "line 4: empty label"),
])
def test_what_is_not_a_dataset_is_said_in_one_line(tmp_path, text, message):
    assert _error(tmp_path, text) == message


@pytest.mark.parametrize("header", [True, False])
@pytest.mark.parametrize("block", [2, 4096])
def test_a_ragged_line_is_named_by_its_line_number(tmp_path, monkeypatch, header, block):
    monkeypatch.setattr(csv_table, "BLOCK", block)
    head = "y,a,b\n" if header else ""
    rows = "0,1,2\n1,3,4\n0,5,6\n1,7\n0,8,9\n"
    assert _error(tmp_path, head + rows) == (f"line {4 + header} has 2 fields; every line needs 3, "
                                            f"as the first line has")
    assert _error(tmp_path, head + rows.replace("1,7\n", "1,7,8,9\n")).startswith(f"line {4 + header} has 4 fields")


def test_a_quoted_ragged_line_is_counted_as_csv_counts_it(tmp_path):
    assert _error(tmp_path, 'y,a,b\n"p,q",1,2\n"r",3,4,5\n') == "line 3 has 4 fields; every line needs 3, as the first line has"


@pytest.mark.parametrize("header", [True, False])
@pytest.mark.parametrize("block", [2, 4096])
def test_a_value_that_is_not_a_number_is_named_by_line_and_column(tmp_path, monkeypatch, header, block):
    monkeypatch.setattr(csv_table, "BLOCK", block)
    head = "y,a,b\n" if header else ""
    message = _error(tmp_path, head + "0,1,2\n1,3,4\n0,5,6\n1,7,x\n0,8,9\n")
    assert message == f"could not convert string 'x' to float64 on line {4 + header}, column 3"


def test_where_rewrites_numpys_row_and_keeps_other_messages():
    assert csv_table._where("could not convert string 'x' to float64 at row 2, column 3.", 10) == \
        "could not convert string 'x' to float64 on line 13, column 3"
    assert csv_table._where("something else.", 10) == "something else"


def test_ragged_finds_the_first_line_of_another_width():
    assert csv_table._ragged(["1,2,3", "4,5,6"], ",", 3) is None
    assert csv_table._ragged(["1,2,3", "4,5", "6"], ",", 3) == (1, 2)
    assert csv_table._ragged(['"1,2",3', "4,5,6"], ",", 2) == (1, 3)
    assert csv_table._ragged(["1;2;3"], ";", 3) is None


def test_pixels_checks_every_value():
    assert csv_table._pixels(np.array([[0.0, 255.0], [3.0, 4.0]]))
    for bad in (-1.0, 255.5, 256.0, math.nan):
        assert not csv_table._pixels(np.array([[0.0, bad], [3.0, 4.0]])), bad
