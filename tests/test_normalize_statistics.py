"""Input normalization (core/data/normalize.py) against NumPy's own mean and variance and numbers worked
out by hand: the constant-feature rule, no statistics for 'scale', and statistics that survive a save."""
import numpy as np
import pytest

from neuraterm.core.data import normalize
from neuraterm.core.data.normalize import Normalizer
from neuraterm.core.errors import NeuratermError


def parsed(text: str) -> str:
    """A mode as a preset's parser hands it over: an equal string, not the interned literal."""
    return "".join(list(text))


@pytest.mark.parametrize("rows", [None, "some"])
@pytest.mark.parametrize("n", [1, 2, 6, 7, 8, 23])
def test_moments_over_chunks_of_rows_are_numpys_mean_and_variance(monkeypatch, n, rows):
    monkeypatch.setattr(normalize, "CHUNK_ROWS", 7)
    rng = np.random.default_rng(n)
    x = rng.normal(3.0, 2.0, (n, 4)).astype(np.float32)
    picked = np.sort(rng.choice(n, size=max(1, n // 2), replace=False)) if rows else None
    mean, var = normalize.moments(x, picked)
    data = x.astype(np.float64) if picked is None else x[picked].astype(np.float64)
    np.testing.assert_allclose(mean, data.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(var, data.var(axis=0), rtol=1e-10, atol=1e-15)


def test_pixels_are_in_units_of_one_over_255():
    x = np.array([[0, 255], [255, 255], [51, 0]], np.uint8)
    mean, var = normalize.moments(x)
    # the factor is float32(1 / 255): float32 rounding
    np.testing.assert_allclose(mean, [(0 + 1 + 0.2) / 3, 2 / 3], rtol=1e-6)
    np.testing.assert_allclose(var, np.var([[0, 1], [1, 1], [0.2, 0]], axis=0), rtol=1e-6)


def test_no_rows_give_zero_statistics_not_nan():
    mean, var = normalize.moments(np.ones((5, 3), np.float32), np.array([], np.int64))
    assert mean.tolist() == [0, 0, 0] and var.tolist() == [0, 0, 0]


@pytest.mark.parametrize("center, spread, kept", [
    (0.5, 1.5e-6, True),   # threshold 1e-6 x max(1, 0.5) = 1e-6: a real, tiny spread
    (0.01, 5e-7, False),   # threshold 1e-6 (not 1e-8: the 1 keeps it from shrinking with the mean)
    (1000.0, 5e-4, False), # threshold 1e-6 x 1000 = 1e-3: rounding noise of a large constant
    (1000.0, 2e-3, True),
    (-1000.0, 5e-4, False),
])
def test_a_feature_counts_as_constant_below_a_millionth_of_its_size(center, spread, kept):
    column = np.array([center + spread, center - spread] * 4)
    x = np.stack([column, np.arange(8.0)], axis=1)
    n = Normalizer.fit(parsed("standardize"), x)
    expected = np.float32(spread) if kept else np.float32(1)
    assert n.std[0] == pytest.approx(expected, rel=1e-6)
    assert n.std[1] == pytest.approx(np.std(np.arange(8.0)), rel=1e-6)
    assert n.mean[0] == pytest.approx(center, rel=1e-6)


def test_standardize_maps_pixels_and_features_by_hand():
    pixels = np.array([[0, 255], [255, 0]], np.uint8)  # units 0 and 1: mean 0.5 each, variance 0.25 each
    n = Normalizer.fit(parsed("standardize"), pixels)
    assert n.mean.tolist() == [0.5, 0.5] and n.std.tolist() == [0.5, 0.5]
    out = n(pixels)
    assert out.dtype == np.float32 and out.tolist() == [[-1, 1], [1, -1]]
    features = np.array([[1.0, 10.0], [3.0, 30.0]], np.float32)
    f = Normalizer.fit(parsed("standardize"), features)
    assert f.mean.tolist() == [2, 20] and f.std.tolist() == [1, 10]
    buffer = np.empty((2, 2), np.float32)
    assert f(features, out=buffer) is buffer and buffer.tolist() == [[-1, -1], [1, 1]]
    assert f.standardize(np.array([[4.0, 0.0]], np.float32)).tolist() == [[2, -2]]


def test_scale_keeps_no_statistics_and_only_divides_pixels():
    pixels = np.array([[0, 51, 255]], np.uint8)
    n = Normalizer.fit(parsed("scale"), pixels)
    assert n.mode == "scale" and n.mean is None and n.std is None
    assert n.arrays() == {}
    out = n(pixels)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0, 0.2, 1]], rtol=1e-6)
    features = np.array([[-3.5, 7.25]], np.float32)
    assert n(features).tolist() == [[-3.5, 7.25]]
    x_unit = np.array([[0.5, 2.0]], np.float32)
    assert n.standardize(x_unit).tolist() == [[0.5, 2.0]]
    assert normalize.unit(pixels) == np.float32(1 / 255) and normalize.unit(features) == 1


def test_statistics_saved_with_a_model_come_back():
    x = np.array([[1.0, 10.0], [3.0, 30.0]], np.float32)
    saved = Normalizer.fit(parsed("standardize"), x).arrays()
    assert sorted(saved) == ["mean", "std"]
    assert saved["mean"].tolist() == [2, 20] and saved["std"].tolist() == [1, 10]
    loaded = Normalizer(parsed("standardize"))
    loaded.restore(saved)
    assert loaded(x).tolist() == [[-1, -1], [1, 1]]
    nothing = Normalizer(parsed("scale"))
    nothing.restore({})
    assert nothing.mean is None and nothing.std is None


def test_an_unknown_mode_is_one_line():
    with pytest.raises(NeuratermError, match="unknown normalization 'zscore'; expected one of scale, standardize"):
        Normalizer.fit("zscore", np.zeros((2, 2), np.float32))
