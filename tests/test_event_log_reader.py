"""The event-log reader as an attached viewer meets it: lines arrive in pieces (a writer's line can be
read half-written), and every event still arrives exactly once, in order."""
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
