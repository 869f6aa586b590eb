"""The event-log reader as an attached viewer meets it: lines arrive in pieces (a writer's line can be
read half-written), and every event still arrives exactly once, in order."""
import json
import math
import os
import tempfile
from pathlib import Path

from hypothesis import given, settings, strategies as st

from neuraterm.core.run import event_log, events


def written(folder: Path) -> tuple[bytes, list]:
    """A real writer's log of a few epochs and a failure whose message has multi-byte characters."""
    sent = [events.EpochEnded(e, 5, 1.0 / e, 0.5, 1.1 / e, 0.4, 0.001, 1e5, 0.1, 0.1 * e) for e in range(1, 5)]
    sent.append(events.RunFailed(str(folder), "loss became nan — épuisé ✗"))
    log = event_log.EventLog(folder, step_interval=0)
    for event in sent:
        log(event)
    log.close()
    data = (folder / event_log.LOG_FILE).read_bytes()
    (folder / event_log.LOG_FILE).unlink()
    return data, sent


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 2000), max_size=12))
def test_a_line_completed_later_is_read_once_and_nothing_is_lost(cuts):
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        data, sent = written(folder)
        points = sorted({c % (len(data) + 1) for c in cuts} | {len(data)})
        reader, got, start = event_log.LogReader(folder), [], 0
        assert reader.read_new() == []  # no file yet
        for point in points:
            with open(folder / event_log.LOG_FILE, "ab") as f:
                f.write(data[start:point])
            start = point
            got += reader.read_new()
        got += reader.read_new()
        assert got == sent


def test_a_torn_line_by_hand(tmp_path):
    data, sent = written(tmp_path)
    first, second = data.split(b"\n")[:2]
    log = tmp_path / event_log.LOG_FILE
    log.write_bytes(first + b"\n" + second[:10])
    reader = event_log.LogReader(tmp_path)
    assert reader.read_new() == sent[:1]
    assert reader.read_new() == []
    with open(log, "ab") as f:
        f.write(second[10:] + b"\n")
    assert reader.read_new() == sent[1:2]


def test_nan_and_infinity_travel_as_strings_and_come_back_as_floats(tmp_path):
    """A diverged epoch's NaN loss must reach every viewer (JSON has no NaN): nested ones too."""
    log = event_log.EventLog(tmp_path, step_interval=0)
    log(events.EpochEnded(3, 5, math.nan, 0.1, math.inf, 0.2, 0.001, 1e5, 0.5, 1.5))
    log(events.RunFinished(str(tmp_path), {"noise": [{"sigma": 0.1, "loss": -math.inf}], "test_loss": math.nan}))
    log.close()
    lines = (tmp_path / event_log.LOG_FILE).read_text().splitlines()
    assert all("NaN" not in line and "Infinity" not in line for line in lines)  # strict JSON
    assert json.loads(lines[0])["train_loss"] == "nan" and json.loads(lines[0])["val_loss"] == "inf"
    assert json.loads(lines[1])["report"] == {"noise": [{"sigma": 0.1, "loss": "-inf"}], "test_loss": "nan"}
    epoch = event_log.LogReader(tmp_path).read_new()[0]
    assert math.isnan(epoch.train_loss) and epoch.val_loss == math.inf and epoch.train_acc == 0.1


def test_step_progress_is_thinned_but_each_epochs_last_step_and_every_epoch_are_written(tmp_path, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(event_log.time, "monotonic", lambda: clock[0])
    log = event_log.EventLog(tmp_path)  # the trainer's default: a line per 0.25 s at most
    for step in range(992, 1001):  # 9 steps 0.1 s apart: 992, 995, 998, and 1000 (0.2 s after 998), the last
        clock[0] += 0.1
        log(events.StepEnded(1, step, 1000, 1.0 / step, 1e4))
    log(events.EpochEnded(1, 2, 0.5, 0.5, 0.5, 0.5, 0.001, 1e4, 1.0, 1.0))
    log.close()
    log.write(events.Heartbeat(False))  # after close: ignored, never an error
    got = event_log.LogReader(tmp_path).read_new()
    assert [e.step for e in got if isinstance(e, events.StepEnded)] == [992, 995, 998, 1000]
    assert isinstance(got[-1], events.EpochEnded) and len(got) == 5


def test_a_folder_claimed_again_is_read_from_its_new_log(tmp_path):
    """A new run in the same folder writes a new events.jsonl (a new file): the reader starts over."""
    data, sent = written(tmp_path)
    log = tmp_path / event_log.LOG_FILE
    log.write_bytes(data)
    reader = event_log.LogReader(tmp_path)
    assert reader.read_new() == sent
    first = data.split(b"\n")[0] + b"\n"
    replacement = tmp_path / "new.jsonl"
    replacement.write_bytes(first)
    os.replace(replacement, log)
    assert reader.read_new() == sent[:1]
    log.unlink()
    assert reader.read_new() == []


def test_last_events_reads_the_tail_and_skips_the_line_it_cut(tmp_path):
    data, sent = written(tmp_path)
    (tmp_path / event_log.LOG_FILE).write_bytes(b"not json\n" + b'{"type": "FromTheFuture", "x": 1}\n' + data)
    assert event_log.last_events(tmp_path) == sent  # unknown and torn lines skipped, never fatal
    lines = data.split(b"\n")
    tail = len(lines[-2]) + 1 + len(lines[-3]) + 1 + 5  # the last two lines and 5 bytes of the one before
    assert event_log.last_events(tmp_path, nbytes=tail) == sent[-2:]
    assert event_log.last_events(tmp_path, nbytes=len(data) + 100) == sent
    assert event_log.last_events(tmp_path / "missing") == []


def test_last_events_of_a_small_log_keep_its_first_line_and_a_cut_one_is_skipped(tmp_path):
    data, sent = written(tmp_path)
    (tmp_path / event_log.LOG_FILE).write_bytes(data)
    assert event_log.last_events(tmp_path) == sent  # smaller than the tail read: nothing is cut
    assert event_log.last_events(tmp_path, nbytes=len(data)) == sent  # exactly the tail: nothing is cut
    assert event_log.last_events(tmp_path, nbytes=len(data) - 1) == sent[1:]  # one byte short: that line is cut


def test_a_viewer_sees_each_line_while_the_run_still_writes(tmp_path):
    """Nothing is held in a buffer: an attached viewer reads a step and an epoch before the log closes."""
    log = event_log.EventLog(tmp_path, step_interval=0)
    reader = event_log.LogReader(tmp_path)
    step = events.StepEnded(1, 1, 10, 2.3, 1e4)
    log(step)
    assert reader.read_new() == [step]
    epoch = events.EpochEnded(1, 2, 0.5, 0.5, 0.5, 0.5, 0.001, 1e4, 1.0, 1.0)
    log(epoch)
    assert reader.read_new() == [epoch]
    log.close()


def test_epochs_checkpoints_and_the_end_are_fsynced_steps_are_not(tmp_path, monkeypatch):
    """A crash loses at most step progress: every durable event is on disk before the trainer goes on."""
    synced = []
    monkeypatch.setattr(event_log.os, "fsync", lambda fd: synced.append(fd))
    log = event_log.EventLog(tmp_path, step_interval=0)
    log(events.StepEnded(1, 1, 10, 2.3, 1e4))
    log(events.Heartbeat(False))
    assert synced == []
    log(events.EpochEnded(1, 2, 0.5, 0.5, 0.5, 0.5, 0.001, 1e4, 1.0, 1.0))
    log(events.CheckpointSaved(str(tmp_path), 1, False))
    log(events.RunFinished(str(tmp_path), {}))
    assert len(synced) == 3
    log.close()


def test_a_full_disk_never_stops_the_writer(tmp_path):
    """The event log is for viewers: a write that fails (ENOSPC) is dropped; the checkpoint path reports it."""
    log = event_log.EventLog(tmp_path, step_interval=0)

    class Full:
        closed = False

        def write(self, data):
            raise OSError(28, "No space left on device")

        def fileno(self):
            raise OSError(28, "No space left on device")

        def close(self):
            pass
    real, log._file = log._file, Full()
    log(events.EpochEnded(1, 2, 0.5, 0.5, 0.5, 0.5, 0.001, 1e4, 1.0, 1.0))
    log.close()
    real.close()


def test_steps_exactly_one_interval_apart_are_each_written(tmp_path, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(event_log.time, "monotonic", lambda: clock[0])
    log = event_log.EventLog(tmp_path, step_interval=0.25)
    for step in range(1, 5):
        clock[0] += 0.25  # exact in binary: 100.25, 100.5, ...
        log(events.StepEnded(1, step, 10, 1.0, 1e4))
    log.close()
    assert [e.step for e in event_log.LogReader(tmp_path).read_new()] == [1, 2, 3, 4]
