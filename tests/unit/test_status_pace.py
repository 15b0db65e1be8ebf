"""controller/sync.py's StatusPace: a Network's status is held back while
rounds for it keep coming, never longer than STATUS_HOLD_SECONDS."""

from __future__ import annotations

import pytest

from controller.sync import STATUS_HOLD_SECONDS, StatusPace

KEY, OTHER = ("ns", "a"), ("ns", "b")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_round_with_nothing_queued_after_it_writes() -> None:
    assert not StatusPace(Clock()).hold(KEY, more_queued=False)


@pytest.mark.parametrize(
    ("later", "held"),
    [(0.0, True), (STATUS_HOLD_SECONDS / 2, True), (STATUS_HOLD_SECONDS - 0.001, True), (STATUS_HOLD_SECONDS, False)],
)
def test_rounds_back_to_back_hold_the_status_no_longer_than_the_limit(later: float, held: bool) -> None:
    clock = Clock()
    pace = StatusPace(clock)
    assert pace.hold(KEY, more_queued=True)
    clock.now += later
    assert pace.hold(KEY, more_queued=True) is held


def test_the_limit_counts_from_the_first_status_held_since_the_last_written() -> None:
    clock = Clock()
    pace = StatusPace(clock)
    assert pace.hold(KEY, more_queued=True)
    clock.now += STATUS_HOLD_SECONDS
    assert not pace.hold(KEY, more_queued=True)
    pace.done(KEY)
    clock.now += 0.1
    assert pace.hold(KEY, more_queued=True)
    clock.now += STATUS_HOLD_SECONDS - 0.2
    assert pace.hold(KEY, more_queued=True)


def test_each_network_has_its_own_limit() -> None:
    clock = Clock()
    pace = StatusPace(clock)
    assert pace.hold(KEY, more_queued=True)
    clock.now += STATUS_HOLD_SECONDS
    assert pace.hold(OTHER, more_queued=True)
    assert not pace.hold(KEY, more_queued=True)
