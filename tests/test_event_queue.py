"""The queue between the supervisor and its caller: bounded, and never out of order."""

from __future__ import annotations

import queue

import pytest

from gui.pipeline import events as ev
from gui.pipeline.event_queue import EventQueue


def drain(events: EventQueue) -> list[object]:
    out = []
    while True:
        try:
            out.append(events.get_nowait())
        except queue.Empty:
            return out


def test_progress_is_coalesced_but_never_overtakes_what_came_before() -> None:
    events = EventQueue()
    events.put(ev.PushStarted("a", 1, 0.0))
    events.put(ev.PushProgress("a", 10, 100))
    events.put(ev.PushProgress("b", 5, 50))
    events.put(ev.PushProgress("a", 20, 100))  # replaces a's 10 where it waits
    events.put(ev.PushStarted("a", 2, 1.0))  # a second attempt: its progress goes after this
    events.put(ev.PushProgress("a", 3, 100))
    assert drain(events) == [ev.PushStarted("a", 1, 0.0), ev.PushProgress("a", 20, 100),
                             ev.PushProgress("b", 5, 50), ev.PushStarted("a", 2, 1.0),
                             ev.PushProgress("a", 3, 100)]


def test_progress_taken_out_starts_a_new_slot() -> None:
    events = EventQueue()
    events.put(ev.PushProgress("a", 1, 9))
    assert events.get_nowait() == ev.PushProgress("a", 1, 9)
    events.put(ev.PushProgress("a", 2, 9))
    assert drain(events) == [ev.PushProgress("a", 2, 9)]


def test_lines_past_the_cap_become_gaps_counted_in_file_lines_and_in_place() -> None:
    events = EventQueue(max_log_lines=2)
    line = lambda text: ev.LogLine("a", ev.Stage.BUILD, text)  # noqa: E731
    events.put(line("1"))
    events.put(line("2"))
    events.put(line("3"))  # over the cap
    events.put(line("4\n5"))  # two lines in the file
    assert events.get_nowait() == line("1")  # room again
    events.put(line("6"))  # queued, after the gap
    events.put(line("7"))  # over the cap again: a new gap, after "6"
    assert drain(events) == [line("2"), ev.LogGap("a", 3), line("6"), ev.LogGap("a", 1)]


def test_a_caller_far_behind_keeps_memory_bounded() -> None:
    events = EventQueue(max_log_lines=100)
    for number in range(100_000):
        events.put(ev.LogLine(f"img{number % 4}", ev.Stage.BUILD, "x"))
        events.put(ev.PushProgress(f"img{number % 4}", number, 100_000))
    assert events.qsize() <= 100 + 2 * 4 + 4
    received = drain(events)
    gaps = sum(record.skipped for record in received if isinstance(record, ev.LogGap))
    lines = sum(1 for record in received if isinstance(record, ev.LogLine))
    assert lines + gaps == 100_000


def test_get_waits_and_times_out() -> None:
    with pytest.raises(queue.Empty):
        EventQueue().get(timeout=0.05)


def test_a_burst_of_lines_counts_as_its_lines_against_the_cap() -> None:
    """A burst (one record, many lines) must not let the queue hold the cap in records."""
    events = EventQueue(max_log_lines=10)
    burst = ev.LogLine("a", ev.Stage.BUILD, "\n".join(str(n) for n in range(10)))
    events.put(burst)
    events.put(ev.LogLine("a", ev.Stage.BUILD, "later"))  # over the cap: counted, not queued
    assert drain(events) == [burst, ev.LogGap("a", 1)]


def test_line_batches_keep_order_and_never_mix_errors_images_or_stages() -> None:
    from gui.pipeline.streams import LineBatch

    sent: list[object] = []
    batch = LineBatch(sent.append)
    line = lambda text, image="a", error=False, stage=ev.Stage.BUILD: ev.LogLine(image, stage, text, error)  # noqa: E731
    for record in (line("1"), line("2"), ev.BuildStep("a", 1, 2, "RUN x"), line("3"), line("boom", error=True),
                   line("4"), line("b1", image="b"), line("p", stage=ev.Stage.PUSH), line(""), line("5\n6"),
                   line("7"), line("page\x0c"), line("8")):
        batch(record)
    batch.flush()
    batch.flush()  # nothing left: sends nothing
    assert sent == [line("1\n2"), ev.BuildStep("a", 1, 2, "RUN x"), line("3"), line("boom", error=True), line("4"),
                    line("b1", image="b"), line("p", stage=ev.Stage.PUSH), line(""), line("5\n6"), line("7"),
                    line("page\x0c"), line("8")]  # a form feed ends a line for splitlines(): sent alone


def test_the_classic_builders_lines_are_whole_lines() -> None:
    """The engine cuts a RUN step's output into stream items anywhere, even inside a line
    or between a \\r and its \\n; a pull status is a message of its own."""
    from gui.pipeline import build_classic

    lines = build_classic._Lines()
    assert lines.feed({"stream": "Step 1/2 : RUN seq 3\n1\n2\n10"}) == ["Step 1/2 : RUN seq 3", "1", "2"]
    assert lines.feed({"stream": "41\r"}) == ["1041"]
    assert lines.feed({"stream": "\npage\x0c"}) == ["page"]  # \r\n split across items: no blank line
    assert lines.feed({"stream": "half"}) == []
    assert lines.feed({"status": "Downloading", "id": "x1"}) == ["half", "x1: Downloading"]
    assert lines.feed({"aux": {"ID": "sha256:1"}}) == []
    assert lines.feed({"stream": "x" * (build_classic.MAX_PARTIAL + 1)}) == ["x" * (build_classic.MAX_PARTIAL + 1)]
    # A RUN step's stderr comes wrapped in colour codes, the reset after the newline.
    assert lines.feed({"stream": "\x1b[91m/bin/sh: curl: not found\n"}) == ["/bin/sh: curl: not found"]
    assert lines.feed({"stream": "\x1b[0m"}) == []
    assert lines.feed({"stream": "about to fail\n"}) == ["about to fail"]
    assert lines.feed({"stream": "no newline at the end"}) == []
    assert lines.rest() == ["no newline at the end"] and lines.rest() == []
