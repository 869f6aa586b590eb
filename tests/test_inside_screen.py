"""The Inside screen, the first layer's pictures and the mistakes gallery: snapshots at 80x24 and
120x40 of a real quick run watched from its folder, and pilot checks of what they say."""
import asyncio
from pathlib import Path

import numpy as np
import pytest

from neuraterm import presets
from neuraterm.core.run.trainer import Trainer
from neuraterm.tui.app import make_app
from neuraterm.tui.screens.inside import InsideScreen
from neuraterm.tui.screens.mistakes import MistakesScreen
from neuraterm.tui.widgets.pixels import half_blocks

SIZES = {"80x24": (80, 24), "120x40": (120, 40)}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """The quick preset as users run it (10 epochs), once for every test here."""
    root = tmp_path_factory.mktemp("inside")
    Trainer(presets.load("quick"), root / "runs" / "quick").run()
    return root


@pytest.fixture
def watched(quick_run, monkeypatch):
    monkeypatch.chdir(quick_run)
    return "runs/quick"


async def settle(pilot, seconds: float = 0.8):
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause(seconds)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def app_watching(run: str):
    return make_app("runs", deterministic=True, watch_dir=run)


def keys(*pressed):
    async def run_before(pilot):
        await settle(pilot)
        for key in pressed:
            await pilot.press(key)
            await settle(pilot)
    return run_before


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_inside(snap_compare, size, watched):
    assert snap_compare(app_watching(watched), terminal_size=SIZES[size], run_before=keys("i"))


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_first_layer_tiles(snap_compare, size, watched):
    assert snap_compare(app_watching(watched), terminal_size=SIZES[size], run_before=keys("i", "w"))


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_mistakes_gallery(snap_compare, size, watched):
    assert snap_compare(app_watching(watched), terminal_size=SIZES[size], run_before=keys("e", "g"))


def drive(run: str, steps, size=(80, 24)):
    async def scenario():
        app = app_watching(run)
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            await steps(app, pilot)
    asyncio.run(scenario())


def test_inside_shows_every_epoch_and_layer_of_the_watched_run(watched):
    async def steps(app, pilot):
        await pilot.press("i")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, InsideScreen)
        assert [h.epoch for h in app.run_state.health] == list(range(1, 11))
        head = str(screen.query_one("#inside-head").render())
        assert "layer health, epoch 10/10" in head and "probe 109 samples" in head  # 1/32 of quick's 3,500 training rows
        table = screen.query_one("#layer-table").content
        assert "hidden1" in str(table.columns[0]._cells[0]) and "output" in str(table.columns[0]._cells[1])
        assert "no alerts" in str(screen.query_one("#inside-alerts").render())
        footer = [strip.text for strip in screen._compositor.render_strips()][-1]
        assert "[ ] Layer" in footer and "W0" not in footer  # z acts on the pictures only
        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert "output weights" in str(screen.query_one("#bands").render())
    drive(watched, steps)


def test_the_tiles_are_the_units_with_the_largest_learned_change(watched):
    async def steps(app, pilot):
        await pilot.press("i", "w")
        await settle(pilot)
        screen = app.screen
        epoch, weights, initial = screen.weights[1:]
        learned = weights - initial
        top = np.argsort(-np.linalg.norm(learned, axis=1))[:2]
        text = str(screen.query_one("#tiles").render())
        assert f"#{top[0]} |w| {np.linalg.norm(learned[top[0]]):.2f}" in text
        assert "W - W0 (learned), epoch 10" in text
        for _ in range(20):  # the footer is recomposed after a refresh
            footer = [strip.text for strip in screen._compositor.render_strips()][-1]
            if "Layer" not in footer:
                break
            await pilot.pause(0.1)
        assert "z W0" in footer and "Layer" not in footer  # [ ] picks a layer of the bands only
        await pilot.press("z")
        await settle(pilot)
        text = str(screen.query_one("#tiles").render())
        raw_top = np.argsort(-np.linalg.norm(weights, axis=1))[0]
        assert "layer 1 W, epoch 10" in text and f"#{raw_top} |w|" in text
    drive(watched, steps)


def test_the_gallery_lists_mistakes_most_confident_first(watched):
    async def steps(app, pilot):
        await pilot.press("e", "g")
        await settle(pilot, 1.5)
        screen = app.screen
        assert isinstance(screen, MistakesScreen)
        mistakes = screen.result["mistakes"]
        confidences = [m["confidence"] for m in mistakes]
        assert len(mistakes) == 12 and confidences == sorted(confidences, reverse=True)
        assert all(m["true"] != m["predicted"] for m in mistakes)
        report = Path("runs/quick/report.json").read_text()
        assert f'"test_size": {screen.result["test_size"]}' in report
    drive(watched, steps)


def test_an_alert_reaches_the_dashboard_log_and_the_inside_screen(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = presets.load("quick")
    config.model.init, config.train.epochs = "zeros", 2
    Trainer(config, Path("runs/zeros")).run()

    async def steps(app, pilot):
        assert any("dead_units" in line and "hidden1" in line for line in app.run_state.log)
        await pilot.press("i")
        await settle(pilot)
        alerts = str(app.screen.query_one("#inside-alerts").render())
        assert "dead_units" in alerts and "identical_units" in alerts and "Try:" in alerts
    drive("runs/zeros", steps, size=(120, 40))


def test_half_blocks_put_two_pixels_in_a_cell():
    rgb = np.zeros((3, 2, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[1, 0] = (0, 0, 255)
    text = half_blocks(rgb)
    lines = text.split("\n")
    assert len(lines) == 2 and all(line.plain == "▀▀" for line in lines)
    first = text.spans[0].style
    assert text.spans[0].start == 0
    assert tuple(first.color.triplet) == (255, 0, 0) and tuple(first.bgcolor.triplet) == (0, 0, 255)


def test_the_gallery_of_non_image_data_shows_class_names_as_text():
    """Class names come from the user's data file: in the list a gallery falls back to for features
    that are not an image, an escape sequence is shown, never sent to the terminal."""
    from neuraterm.tui.widgets.health_views import mistake_tiles
    result = {"mistakes": [{"index": 3, "true": "a\x1b[2Jb", "predicted": "[bold]c", "confidence": 0.9,
                            "image": [0.1, 0.2, 0.3, 0.4, 0.5]}],
              "wrong": 1, "test_size": 10, "epoch": 2}
    plain = mistake_tiles(result, 80).plain
    assert "\x1b" not in plain and "a\\x1b[2Jb" in plain and "[bold]c" in plain
