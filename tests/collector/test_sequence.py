"""Loss accounting (pure): late samples refill what was counted lost, a seq jump beyond
the bound or a new epoch starts a fresh stream, and a real repeat is still a duplicate."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shopfloor.collector.sequence import MAX_SEQ_JUMP, Observation, SequenceTracker

TOP = 2**63 - 1


def feed(tracker: SequenceTracker, seqs, now_s: float = 0.0, epoch: int | None = None):
    return [tracker.observe("m", s, now_s, epoch) for s in seqs]


def test_a_late_block_after_its_gap_was_counted_lost_refills_it():
    tracker = SequenceTracker(grace_s=0.0)
    feed(tracker, range(0, 10))
    assert feed(tracker, [20])[0].opened == 10
    assert tracker.expire(1.0) == {"m": 10}
    seen = feed(tracker, range(10, 20), now_s=2.0)
    assert all(o.late and o.refilled and not o.duplicate for o in seen)
    assert tracker.observe("m", 15, 3.0) == Observation(duplicate=True)
    assert tracker.missing("m") == 0 and tracker.expire(10.0) == {}


@given(st.lists(st.one_of(st.integers(0, 50), st.none()), min_size=1, max_size=80))
def test_net_lost_is_what_never_came_and_repeats_are_duplicates(events):
    """Seqs (None = an expiry) in any order: at the end, lost - refilled counts exactly
    the seqs between the first and the highest that never came; repeats are duplicates."""
    tracker = SequenceTracker(grace_s=0.0)
    seqs = [e for e in events if e is not None]
    lost = refilled = duplicates = 0
    for event in events:
        if event is None:
            lost += sum(tracker.expire(0.0).values())
            continue
        seen = tracker.observe("m", event, 0.0)
        refilled += seen.refilled
        duplicates += seen.duplicate
        assert not seen.restarted
    lost += sum(tracker.expire(0.0).values())
    if not seqs:
        return
    first = seqs[0]
    received = {s for s in seqs if s >= first}
    assert lost - refilled == max(seqs) - first + 1 - len(received)
    assert duplicates == len(seqs) - len(received)


def test_seq_at_the_top_is_a_restart_then_the_stream_goes_on():
    tracker = SequenceTracker(grace_s=0.0)
    feed(tracker, range(0, 1001))
    assert tracker.observe("m", TOP, 0.0) == Observation(restarted=True)
    seen = feed(tracker, range(1001, 1100))
    assert all(o == Observation() for o in seen)  # in order: no gap, no duplicates
    assert tracker.last("m") == 1099 and tracker.missing("m") == 0
    assert tracker.expire(10.0) == {}


def test_a_jump_beyond_the_bound_starts_a_new_stream_a_smaller_one_is_a_gap():
    tracker = SequenceTracker(grace_s=0.0)
    feed(tracker, [0])
    assert tracker.observe("m", MAX_SEQ_JUMP, 0.0).opened == MAX_SEQ_JUMP - 1
    far = 3 * MAX_SEQ_JUMP
    assert tracker.observe("m", far, 0.0).restarted
    assert all(o == Observation() for o in feed(tracker, range(far + 1, far + 10)))
    assert tracker.observe("m", 5, 0.0).late  # the previous stream still accounts its own
    assert tracker.expire(1.0) == {"m": MAX_SEQ_JUMP - 2}


def test_a_new_epoch_is_fresh_accounting_and_the_old_epoch_still_counts():
    tracker = SequenceTracker(grace_s=0.0)
    feed(tracker, range(0, 100), epoch=1)
    assert tracker.observe("m", 0, 0.0, epoch=2).restarted
    assert all(o == Observation() for o in feed(tracker, range(1, 50), epoch=2))
    assert tracker.observe("m", 100, 0.0, epoch=1) == Observation()  # late, previous epoch
    assert tracker.observe("m", 50, 0.0, epoch=1).duplicate
    assert tracker.observe("m", 50, 0.0, epoch=2) == Observation()
    assert tracker.last("m") == 50 and tracker.expire(1.0) == {}


def test_an_epoch_that_starts_as_the_recovered_one_continues_it():
    tracker = SequenceTracker(grace_s=0.0)
    tracker.recover({"m": 41}, {"m": 7})
    assert tracker.observe("m", 42, 0.0, epoch=7) == Observation()
    assert tracker.observe("m", 3, 0.0, epoch=8).restarted


def test_open_holes_of_a_stream_left_behind_twice_count_as_lost():
    tracker = SequenceTracker(grace_s=100.0)
    feed(tracker, [0, 5], epoch=1)  # 1..4 missing
    assert tracker.observe("m", 0, 0.0, epoch=2).restarted
    assert tracker.missing("m") == 4
    assert tracker.observe("m", 0, 0.0, epoch=3).restarted  # epoch 1 is no longer followed
    assert tracker.expire(1.0) == {"m": 4} and tracker.missing("m") == 0
