"""The event log's bounds, with its byte budgets made small so that each limit is met in a few lines:
compaction keeps every epoch and the latest STEP_BUDGET / 2 bytes of step lines; a first read skims
step lines before the last SKIM_TAIL bytes; reads go CHUNK bytes at a time; a line longer than
LINE_LIMIT is skipped and counted once. Expected lines are worked out from the bytes on disk."""
import json
import os
import types

import pytest

from neuraterm.core.run import event_log, events

STEP_PREFIXES = (b'{"type": "StepEnded"', b'{"type": "Heartbeat"')


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch):
    """Every record's wall-clock time is 1.5: a line's length no longer depends on when it was written."""
    monkeypatch.setattr(events, "time", types.SimpleNamespace(time=lambda: 1.5))


def lines_of(path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def is_step(line: bytes) -> bool:
    return line.startswith(STEP_PREFIXES)


def epoch(n: int) -> events.EpochEnded:
    return events.EpochEnded(n, 9, 0.5, 0.9, 0.6, 0.8, 0.01, 100.0, 1.0, float(n))


def step(n: int) -> events.StepEnded:
    return events.StepEnded(1, n, 999, 0.5, 100.0)  # steps 100-999: every step line has the same length


@pytest.mark.parametrize("lines, extra", [(20, 0), (20, 1), (21, -5), (22, -1)])
def test_compaction_keeps_every_other_line_and_the_latest_half_budget_of_steps(tmp_path, monkeypatch, lines, extra):
    """Budgets at a whole number of lines, one byte over, and a few bytes under: each byte counts."""
    log = event_log.EventLog(tmp_path, step_interval=0)
    log(step(100))
    line = len(lines_of(tmp_path / "events.jsonl")[0]) + 1  # bytes per step line, its newline included
    budget = lines * line + extra
    monkeypatch.setattr(event_log, "STEP_BUDGET", budget)
    keep = (budget // 2) // line  # whole step lines in half the budget
    assert keep == 10
    log(events.RunStarted(str(tmp_path), "b", "cpu", 10, 10, 1, 1, 999, 0, 9))
    expected_steps, others, in_file = [100], ["RunStarted"], 1
    for n in range(101, 180):
        log(step(n))
        expected_steps.append(n)
        in_file += 1
        if in_file * line > budget:  # over the budget: compacted to the latest `keep` steps
            expected_steps, in_file = expected_steps[-keep:], keep
        if n % 25 == 0:
            log(epoch(n // 25))
            others.append("EpochEnded")
        kept = lines_of(tmp_path / "events.jsonl")
        steps = [json.loads(k)["step"] for k in kept if is_step(k)]
        assert steps == expected_steps, n
        assert [json.loads(k)["type"] for k in kept if not is_step(k)] == others
        assert sum(len(k) + 1 for k in kept if is_step(k)) <= budget
    log.close()
    assert 10 <= len(expected_steps) <= 22  # compacted more than once
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "events.jsonl").stat().st_mode & 0o777 == 0o666 & ~umask  # as a new file would be
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.jsonl"]  # no temporary file left


def test_a_log_compacted_while_a_reader_follows_it_is_read_again_from_the_top(tmp_path, monkeypatch):
    monkeypatch.setattr(event_log, "STEP_BUDGET", 3000)
    log = event_log.EventLog(tmp_path, step_interval=0)
    reader = event_log.LogReader(tmp_path)
    log(epoch(1))
    assert reader.read_new() == [epoch(1)]
    inode = (tmp_path / "events.jsonl").stat().st_ino
    n = 100
    while (tmp_path / "events.jsonl").stat().st_ino == inode:
        log(step(n))
        n += 1
    log(epoch(2))
    got = reader.read_new()
    on_disk = [json.loads(k) for k in lines_of(tmp_path / "events.jsonl")]
    assert [e.epoch for e in got if isinstance(e, events.EpochEnded)] == [1, 2]  # epoch 1 again, from the top
    assert [e.step for e in got if isinstance(e, events.StepEnded)] == [r["step"] for r in on_disk
                                                                        if r["type"] == "StepEnded"]
    assert len(got) == len(on_disk)
    log.close()


def test_a_log_reopened_counts_its_existing_bytes_as_steps(tmp_path, monkeypatch):
    """An existing log's mix is not known: all of it counts towards the step budget (compacted sooner)."""
    (tmp_path / "events.jsonl").write_bytes(b"".join(json.dumps({"type": "Old", "pad": "x" * 90}).encode() + b"\n"
                                                     for _ in range(30)))  # 30 lines of 104 bytes
    monkeypatch.setattr(event_log, "STEP_BUDGET", 3200)
    log = event_log.EventLog(tmp_path, step_interval=0)
    log(step(100))  # 3120 + one step line > 3200: compacted now; the old lines are not step lines: all kept
    kept = lines_of(tmp_path / "events.jsonl")
    assert len(kept) == 31 and is_step(kept[-1])
    log.close()


def write_lines(path, records) -> list[bytes]:
    lines = [json.dumps(r).encode() for r in records]
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return lines


def record_of(e) -> dict:
    return events.to_record(e)


@pytest.mark.parametrize("chunk", [400, 8 << 20])
@pytest.mark.parametrize("tail", [0, 1, 150, 151, 152, 600, 10_000])
def test_a_first_read_skims_step_lines_before_the_tail(tmp_path, monkeypatch, tail, chunk):
    monkeypatch.setattr(event_log, "SKIM_TAIL", tail)
    monkeypatch.setattr(event_log, "CHUNK", chunk)
    sent = [events.RunStarted(str(tmp_path), "b", "cpu", 10, 10, 1, 1, 999, 0, 9)]
    for e in range(1, 5):
        sent += [step(100 + 10 * e + s) for s in range(3)] + [epoch(e)]
    sent.append(step(199))  # a step line last too
    lines = write_lines(tmp_path / "events.jsonl", [record_of(e) for e in sent])
    size = sum(len(line) + 1 for line in lines)
    ends, at = [], 0
    for line in lines:
        at += len(line)
        ends.append(at)  # where its newline is
        at += 1
    # a step line whose newline lies before the last `tail` bytes is passed over
    expected = [e for e, end in zip(sent, ends) if not (isinstance(e, events.StepEnded) and end < size - tail)]
    reader = event_log.LogReader(tmp_path)
    assert reader.read_new() == expected
    assert reader.skipped == 0
    assert event_log.LogReader(tmp_path, skim=False).read_new() == sent
    with open(tmp_path / "events.jsonl", "ab") as f:  # later reads never skim
        f.write(b"".join(json.dumps(record_of(e)).encode() + b"\n" for e in [step(200), step(201)]))
    assert reader.read_new() == [step(200), step(201)]


@pytest.mark.parametrize("chunk", [230, 257, 1000, 1 << 20])  # above the longest line (217 bytes)
def test_reads_in_chunks_give_every_event_once_in_order(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(event_log, "CHUNK", chunk)
    sent = [epoch(n) if n % 7 == 0 else step(n) for n in range(100, 160)]
    write_lines(tmp_path / "events.jsonl", [record_of(e) for e in sent])
    reader = event_log.LogReader(tmp_path, skim=False)
    assert reader.read_new() == sent
    assert reader.offset == (tmp_path / "events.jsonl").stat().st_size
    assert reader.read_new() == [] and reader.skipped == 0


@pytest.mark.parametrize("chunk", [256, 4096])
def test_a_line_longer_than_the_limit_is_skipped_and_counted_once(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(event_log, "CHUNK", chunk)
    monkeypatch.setattr(event_log, "LINE_LIMIT", 600)
    long_one = record_of(events.RunFailed(str(tmp_path), "x" * 1500))  # valid JSON, but 1,500+ bytes
    empty = len(json.dumps(record_of(events.RunFailed("r", ""))))
    just_under = record_of(events.RunFailed("r", "y" * (600 - empty)))
    assert len(json.dumps(just_under)) == 600
    sent = [epoch(1), long_one, epoch(2), long_one, long_one, epoch(3)]
    if chunk > 600:
        sent.insert(3, just_under)
    path = tmp_path / "events.jsonl"
    lines = write_lines(path, [r if isinstance(r, dict) else record_of(r) for r in sent])
    reader = event_log.LogReader(tmp_path, skim=False)
    got = reader.read_new()
    expected = [epoch(1), epoch(2)] + ([events.RunFailed("r", just_under["message"])] if chunk > 600 else []) + [epoch(3)]
    assert got == expected
    assert reader.skipped == 3
    assert reader.offset == sum(len(line) + 1 for line in lines)


@pytest.mark.parametrize("chunk", [256, 4096])  # a chunk under the limit, and over it
def test_a_long_line_written_in_pieces_is_counted_once_and_what_follows_is_read(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(event_log, "CHUNK", chunk)
    monkeypatch.setattr(event_log, "LINE_LIMIT", 600)
    path = tmp_path / "events.jsonl"
    write_lines(path, [record_of(epoch(1))])
    reader = event_log.LogReader(tmp_path, skim=False)
    assert reader.read_new() == [epoch(1)]
    piece = json.dumps(record_of(events.RunFailed("r", "z" * 2000))).encode()
    with open(path, "ab") as f:
        f.write(piece[:700])
    assert reader.read_new() == [] and reader.skipped == 1
    with open(path, "ab") as f:
        f.write(piece[700:1500])
    assert reader.read_new() == [] and reader.skipped == 1
    with open(path, "ab") as f:
        f.write(piece[1500:] + b"\n" + json.dumps(record_of(epoch(2))).encode() + b"\n")
    assert reader.read_new() == [epoch(2)] and reader.skipped == 1
    assert reader.read_new() == [] and reader.skipped == 1


def test_a_short_torn_line_is_waited_for_not_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(event_log, "CHUNK", 4096)
    path = tmp_path / "events.jsonl"
    line = json.dumps(record_of(epoch(1))).encode()
    path.write_bytes(line[:40])
    reader = event_log.LogReader(tmp_path)
    assert reader.read_new() == [] and reader.skipped == 0 and reader.offset == 0
    with open(path, "ab") as f:
        f.write(line[40:] + b"\n")
    assert reader.read_new() == [epoch(1)] and reader.skipped == 0


def test_a_blank_line_is_passed_while_the_next_one_is_still_written(tmp_path):
    path = tmp_path / "events.jsonl"
    line = json.dumps(record_of(epoch(1))).encode()
    path.write_bytes(b"\n" + line[:30])
    reader = event_log.LogReader(tmp_path)
    assert reader.read_new() == [] and reader.offset == 1 and reader.skipped == 0
    with open(path, "ab") as f:
        f.write(line[30:] + b"\n")
    assert reader.read_new() == [epoch(1)] and reader.offset == len(line) + 2


def test_a_short_log_skims_by_the_line_that_holds_the_tails_first_byte(tmp_path, monkeypatch):
    """Two step lines, 250 bytes: a tail of one byte is the last line's newline, so that line is read."""
    path = tmp_path / "events.jsonl"
    lines = write_lines(path, [record_of(step(100)), record_of(step(101))])
    assert len(lines[0]) + len(lines[1]) + 2 < 256
    for tail, expected in [(0, []), (1, [step(101)]), (len(lines[1]) + 1, [step(101)]),
                           (len(lines[1]) + 2, [step(100), step(101)])]:
        monkeypatch.setattr(event_log, "SKIM_TAIL", tail)
        assert event_log.LogReader(tmp_path).read_new() == expected, tail
