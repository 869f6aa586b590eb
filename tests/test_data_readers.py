"""The IDX and .npy/.npz readers on bytes written by hand here: every header check, every size, every
message, and the arrays they give back compared with the values written."""
import gzip
import io
import zipfile

import numpy as np
import pytest

from neuraterm.core.data import idx, npy
from neuraterm.core.errors import NeuratermError


def idx_bytes(array, magic=(0, 0, 8)):
    """An IDX file by its specification: magic, dimension count, big-endian uint32 sizes, the bytes."""
    return bytes([*magic, array.ndim]) + np.array(array.shape, ">u4").tobytes() + array.astype(np.uint8).tobytes()


# -- IDX --------------------------------------------------------------------------------------
@pytest.mark.parametrize("magic,shown", [((1, 0, 8), "01000802"), ((0, 1, 8), "00010802"), ((0, 0, 9), "00000902"),
                                         ((0, 0, 0x0D), "00000d02"), ((0, 0, 3), "00000302"),
                                         ((0x20, 0, 8), "20000802")])  # above gzip's 1f8b, not gzip
def test_idx_magic_bytes_are_each_checked(tmp_path, magic, shown):
    path = tmp_path / "f"
    path.write_bytes(idx_bytes(np.zeros((2, 3)), magic))
    with pytest.raises(NeuratermError, match=rf"^{path}: not an IDX uint8 file \(magic {shown}, expected 000008xx\)$"):
        idx.read_idx(path)


@pytest.mark.parametrize("raw,message", [
    (b"", "not an IDX file (only 0 bytes)"), (b"\0\0\x08", "not an IDX file (only 3 bytes)"),
    (b"\0\0\x08\x00", "truncated IDX header"),  # no dimensions at all
    (b"\0\0\x08\x02" + np.array([3], ">u4").tobytes(), "truncated IDX header"),  # one size of two
    (b"\0\0\x08\x02" + np.array([3, 4], ">u4").tobytes()[:-1], "truncated IDX header"),
    (b"\0\0\x08\x41" + np.ones(65, ">u4").tobytes(), "IDX header says 65 dimensions; at most 8 are read"),
    (b"\0\0\x08\x09" + np.ones(9, ">u4").tobytes(), "IDX header says 9 dimensions; at most 8 are read"),
])
def test_idx_short_headers_are_named(tmp_path, raw, message):
    path = tmp_path / "f"
    path.write_bytes(raw)
    with pytest.raises(NeuratermError) as err:
        idx.read_idx(path)
    assert str(err.value) == f"{path}: {message}"


def test_idx_data_shorter_or_longer_than_the_header_says(tmp_path):
    path = tmp_path / "f"
    whole = idx_bytes(np.arange(12).reshape(3, 4))
    path.write_bytes(whole[:-2])
    with pytest.raises(NeuratermError) as err:
        idx.read_idx(path)
    assert str(err.value) == (f"{path}: IDX header promises 12 bytes of data for shape (3, 4), file holds 10 "
                              f"(truncated or corrupt)")
    path.write_bytes(whole + b"\0")
    with pytest.raises(NeuratermError, match=r"promises 12 bytes of data for shape \(3, 4\), file holds more"):
        idx.read_idx(path)
    path.write_bytes(whole)
    np.testing.assert_array_equal(idx.read_idx(path), np.arange(12).reshape(3, 4))
    path.write_bytes(idx_bytes(np.zeros((3, 100))) + b"\0")  # sizes past CPython's cached small ints
    with pytest.raises(NeuratermError, match=r"promises 300 bytes of data for shape \(3, 100\), file holds more"):
        idx.read_idx(path)


def test_idx_a_stack_of_files_is_one_array_of_rows_in_order(tmp_path):
    a, b = np.arange(2 * 6).reshape(2, 2, 3), 100 + np.arange(3 * 6).reshape(3, 6)
    (tmp_path / "a").write_bytes(idx_bytes(a))
    (tmp_path / "b.gz").write_bytes(gzip.compress(idx_bytes(b)))
    x, counts = idx.read_stack([tmp_path / "a", tmp_path / "b.gz"])
    assert counts == [2, 3] and x.shape == (5, 6) and x.dtype == np.uint8
    np.testing.assert_array_equal(x, np.concatenate([a.reshape(2, 6), b]))
    (tmp_path / "c").write_bytes(idx_bytes(np.zeros((2, 5))))
    with pytest.raises(NeuratermError) as err:
        idx.read_stack([tmp_path / "a", tmp_path / "c"])
    assert str(err.value) == f"{tmp_path / 'a'} and {tmp_path / 'c'}: images of different sizes"


def test_idx_pairs_give_int64_labels_and_counts_and_refuse_bad_label_files(tmp_path):
    for name, array in (("i1", np.full((2, 4), 7)), ("l1", np.array([3, 1])), ("i2", np.full((1, 4), 9)),
                        ("l2", np.array([250])), ("l2d", np.zeros((1, 1)))):
        (tmp_path / name).write_bytes(idx_bytes(array))
    x, y, counts = idx.read_pairs([(tmp_path / "i1", tmp_path / "l1"), (tmp_path / "i2", tmp_path / "l2")])
    np.testing.assert_array_equal(x, [[7] * 4, [7] * 4, [9] * 4])
    assert y.dtype == np.int64 and y.tolist() == [3, 1, 250] and counts == [2, 1]
    with pytest.raises(NeuratermError) as err:
        idx.read_pairs([(tmp_path / "i2", tmp_path / "l2d")])
    assert str(err.value) == f"{tmp_path / 'l2d'}: expected a 1-D label file, got shape (1, 1)"
    with pytest.raises(NeuratermError) as err:
        idx.read_pair(tmp_path / "i2", tmp_path / "l1")
    assert str(err.value) == f"{tmp_path / 'i2'} holds 1 images but {tmp_path / 'l1'} holds 2 labels"


def test_idx_archive_members_are_read_and_named_by_their_name(tmp_path):
    images, labels = idx_bytes(np.arange(8).reshape(2, 4)), gzip.compress(idx_bytes(np.array([0, 1])))
    members = {"img": images, "lab": labels, "bad": images[:-1]}

    def source(key):
        return (f"data.zip:{key}", lambda: io.BufferedReader(io.BytesIO(members[key])))
    x, y, counts = idx.read_pairs([(source("img"), source("lab"))])
    assert x.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]] and y.tolist() == [0, 1] and counts == [2]
    with pytest.raises(NeuratermError, match=r"^data.zip:bad: IDX header promises 8 bytes"):
        idx.read_idx(source("bad"))
    with pytest.raises(NeuratermError) as err:
        idx.read_pairs([(source("img"), source("bad"))])
    assert str(err.value).startswith("data.zip:bad: IDX header promises 8 bytes")
    with pytest.raises(NeuratermError) as err:
        idx.read_pairs([(source("img"), source("img"))])
    assert str(err.value) == "data.zip:img: expected a 1-D label file, got shape (2, 4)"
    with pytest.raises(NeuratermError) as err:
        idx.read_pairs([(source("img"), ("data.zip:lab3", lambda: io.BufferedReader(io.BytesIO(
            idx_bytes(np.zeros(3))))))])
    assert str(err.value) == "data.zip:img holds 2 images but data.zip:lab3 holds 3 labels"


def test_idx_unreadable_sources_name_the_first_file(tmp_path):
    with pytest.raises(NeuratermError, match=rf"^{tmp_path / 'missing'}: cannot read \("):
        idx.read_idx(tmp_path / "missing")
    with pytest.raises(NeuratermError, match=rf"^{tmp_path / 'missing'}: cannot read \("):
        idx.read_stack([tmp_path / "missing"])

    def broken():
        raise OSError("gone")
    with pytest.raises(NeuratermError, match=r"^zip:m: cannot read \(gone\)$"):
        idx.read_idx(("zip:m", broken))
    with pytest.raises(NeuratermError, match=r"^zip:m: cannot read \(gone\)$"):
        idx.read_stack([("zip:m", broken)])
    archived = ("zip:m", broken)
    with pytest.raises(NeuratermError, match=rf"^{tmp_path / 'missing'}: cannot read \("):
        idx.read_stack([tmp_path / "missing", archived])  # named by the first source, a path
    with pytest.raises(NeuratermError, match=r"^zip:m: cannot read \(gone\)$"):
        idx.read_stack([archived, tmp_path / "missing"])
    (tmp_path / "cut.gz").write_bytes(gzip.compress(idx_bytes(np.zeros((3, 4))))[:-12])
    with pytest.raises(NeuratermError, match=r"cut.gz: cannot read"):
        idx.read_stack([tmp_path / "cut.gz"])


# -- .npy and .npz ------------------------------------------------------------------------------
def write_npy(path, array, version=None):
    with open(path, "wb") as f:
        np.lib.format.write_array(f, array, version=version)


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_npy_every_header_version_is_mapped(tmp_path, version):
    array = np.arange(12, dtype=np.int16).reshape(3, 4)
    write_npy(tmp_path / "a.npy", array, version)
    got = npy.load_npy(tmp_path / "a.npy")
    assert isinstance(got, np.memmap) and not got.flags.writeable
    np.testing.assert_array_equal(got, array)


def test_npy_fortran_order_and_empty_arrays(tmp_path):
    array = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    write_npy(tmp_path / "f.npy", array)
    got = npy.load_npy(tmp_path / "f.npy")
    assert got.flags.f_contiguous
    np.testing.assert_array_equal(got, [[0, 1, 2], [3, 4, 5]])
    write_npy(tmp_path / "one.npy", np.array([[5]], np.int8))
    assert npy.load_npy(tmp_path / "one.npy").tolist() == [[5]]
    write_npy(tmp_path / "e.npy", np.zeros((0, 3), np.uint8))
    empty = npy.load_npy(tmp_path / "e.npy")
    assert empty.shape == (0, 3) and empty.dtype == np.uint8


def test_npy_a_header_promising_more_than_the_file_holds(tmp_path):
    path = tmp_path / "a.npy"
    write_npy(path, np.zeros(10))
    raw = path.read_bytes()
    path.write_bytes(raw[:-40])
    with pytest.raises(NeuratermError) as err:
        npy.load_npy(path)
    assert str(err.value) == f"{path}: its header says (10,) float64 (80 bytes) but the file holds 40 bytes of data"
    path.write_bytes(raw[:-1])
    with pytest.raises(NeuratermError, match=r"\(80 bytes\) but the file holds 79 bytes"):
        npy.load_npy(path)
    path.write_bytes(raw[:-80])  # the header alone
    with pytest.raises(NeuratermError, match=r"\(80 bytes\) but the file holds 0 bytes of data$"):
        npy.load_npy(path)
    path.write_bytes(raw)
    assert npy.load_npy(path).shape == (10,)
    path.write_bytes(raw + b"\0" * 8)  # bytes after the data are left alone, as NumPy's own reader does
    np.testing.assert_array_equal(npy.load_npy(path), np.zeros(10))


def test_npy_objects_and_non_arrays_are_refused(tmp_path):
    np.save(tmp_path / "o.npy", np.array([None, 1], dtype=object))
    with pytest.raises(NeuratermError, match=r"o.npy: holds Python objects \(pickled data\)"):
        npy.load_npy(tmp_path / "o.npy")
    (tmp_path / "t.npy").write_bytes(b"hello, not numpy")
    with pytest.raises(NeuratermError, match=r"t.npy: not a .npy array \("):
        npy.load_npy(tmp_path / "t.npy")


def test_npz_only_the_members_asked_for_and_only_npy_members(tmp_path):
    path = tmp_path / "a.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "not an array")  # first: the arrays after it are still read
        for key, array, method in (("x", np.arange(6).reshape(2, 3), zipfile.ZIP_STORED),
                                   ("y", np.array([1, 0]), zipfile.ZIP_DEFLATED)):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array)
            zf.writestr(zipfile.ZipInfo(f"{key}.npy"), buffer.getvalue(), compress_type=method)
    members = npy.npz_members(path)
    assert sorted(members) == ["x", "y"]
    assert isinstance(members["x"], np.memmap) and not isinstance(members["y"], np.memmap)
    np.testing.assert_array_equal(members["x"], [[0, 1, 2], [3, 4, 5]])
    np.testing.assert_array_equal(members["y"], [1, 0])
    assert sorted(npy.npz_members(path, ("y",))) == ["y"]
    headers = npy.npz_headers(path)
    assert headers == {"x": ((2, 3), np.dtype(int)), "y": ((2,), np.dtype(int))}


def test_npz_a_compressed_member_larger_than_memory_is_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    np.savez_compressed(path, x=np.zeros((1024, 1024), np.float32))  # 4 MiB once decompressed
    monkeypatch.setattr(npy, "available_memory", lambda: 3 * 2**20)
    with pytest.raises(NeuratermError) as err:
        npy.npz_members(path)
    assert str(err.value) == (f"{path}:x.npy: (1024, 1024) float32 needs 0.0 GiB once decompressed; "
                              f"0.0 GiB are available")
    monkeypatch.setattr(npy, "available_memory", lambda: 4 * 2**20)  # exactly enough
    assert npy.npz_members(path)["x"].shape == (1024, 1024)
    np.savez(tmp_path / "s.npz", x=np.zeros((1024, 1024), np.float32))
    monkeypatch.setattr(npy, "available_memory", lambda: 1)  # a stored member is mapped, not held
    assert npy.npz_members(tmp_path / "s.npz")["x"].shape == (1024, 1024)


def test_npz_a_member_header_promising_more_than_the_member_holds(tmp_path):
    path = tmp_path / "m.npz"
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.zeros(10))
    for method, what in ((zipfile.ZIP_STORED, "file"), (zipfile.ZIP_DEFLATED, "member")):
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(zipfile.ZipInfo("x.npy"), buffer.getvalue()[:-16], compress_type=method)
        with pytest.raises(NeuratermError) as err:
            npy.npz_members(path)
        assert str(err.value) == (f"{path}:x.npy: its header says (10,) float64 (80 bytes) but the {what} holds "
                                  f"64 bytes of data")


def test_npz_a_damaged_local_header_is_named(tmp_path):
    """zipfile checks the local header's signature when it opens the member, before npy's own check."""
    path = tmp_path / "d.npz"
    np.savez(path, x=np.arange(3))
    raw = bytearray(path.read_bytes())
    assert raw[:4] == b"PK\x03\x04"
    raw[:4] = b"PK\x09\x09"
    path.write_bytes(bytes(raw))
    with pytest.raises(NeuratermError) as err:
        npy.npz_members(path)
    assert str(err.value).startswith(f"{path}: not a readable .npz archive (")


def test_npz_members_behind_a_long_local_header_are_found(tmp_path):
    """The data starts after the local header, its name and its extra field (the central directory's
    extra field may differ from the local one): a member with a local extra field is still read right."""
    path = tmp_path / "e.npz"
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.arange(5, dtype=np.int32))
    info = zipfile.ZipInfo("x.npy")
    info.extra = b"\xfe\xca\x04\x00abcd"  # an unknown 4-byte extra field (id 0xcafe)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(info, buffer.getvalue(), compress_type=zipfile.ZIP_STORED)
    np.testing.assert_array_equal(npy.npz_members(path)["x"], np.arange(5))


def test_npz_unreadable_archives_are_named(tmp_path):
    path = tmp_path / "bad.npz"
    path.write_bytes(b"not a zip")
    for read in (npy.npz_members, npy.npz_headers):
        with pytest.raises(NeuratermError, match=rf"^{path}: not a readable .npz archive \("):
            read(path)


def test_available_memory_reads_memavailable_in_bytes(monkeypatch):
    meminfo = "MemTotal:       1000 kB\nMemFree:         500 kB\nMemAvailable:    2048 kB\n"
    monkeypatch.setattr(npy, "open", lambda *a, **k: io.StringIO(meminfo), raising=False)
    assert npy.available_memory() == 2048 * 1024
    monkeypatch.setattr(npy, "open", lambda *a, **k: io.StringIO("MemTotal: 1000 kB\n"), raising=False)
    import os
    assert npy.available_memory() == os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")

    def missing(*a, **k):
        raise OSError("no /proc")
    monkeypatch.setattr(npy, "open", missing, raising=False)
    assert npy.available_memory() == os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def test_npz_the_memory_message_gives_fractions_of_a_gibibyte(tmp_path, monkeypatch):
    """A 1.5 GiB member (its header and a zip directory that say so; the data is never reached) against
    1 GiB available: both figures to a tenth, as written out here."""
    path = tmp_path / "big.npz"
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (384 * 2**20,)})
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(zipfile.ZipInfo("x.npy"), buffer.getvalue(), compress_type=zipfile.ZIP_DEFLATED)
    raw = bytearray(path.read_bytes())
    central = raw.index(b"PK\x01\x02")
    raw[central + 24:central + 28] = (2**31).to_bytes(4, "little")  # uncompressed size: 2 GiB
    path.write_bytes(bytes(raw))
    monkeypatch.setattr(npy, "available_memory", lambda: int(1.3 * 2**30))
    with pytest.raises(NeuratermError) as err:
        npy.npz_members(path)
    assert str(err.value) == (f"{path}:x.npy: (402653184,) float32 needs 1.5 GiB once decompressed; "
                              f"1.3 GiB are available")
