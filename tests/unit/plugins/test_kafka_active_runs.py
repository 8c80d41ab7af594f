"""The running set and the ActiveRunsList sort order (ITS first, detector counts, stability)."""

from __future__ import annotations

import itertools
import threading

from aliecs_integration_plugins.kafka.active_runs import ActiveRuns, compare_runs, sort_runs
from hypothesis import given
from hypothesis import strategies as st

from aliecs_integration.pb import kafka_pb2


def run(env_id: str, *detectors: str, state: str = "RUNNING") -> kafka_pb2.EnvInfo:
    return kafka_pb2.EnvInfo(environmentId=env_id, state=state, detectors=detectors, runNumber=1)


def ids(runs: list[kafka_pb2.EnvInfo]) -> list[str]:
    return [r.environmentId for r in runs]


def test_its_first_when_both_have_two_or_more_detectors() -> None:
    big = run("big", "TPC", "TOF", "EMC", "MCH")
    its = run("its", "ITS", "TPC")
    assert ids(sort_runs([big, its])) == ["its", "big"]
    assert ids(sort_runs([its, big])) == ["its", "big"]


def test_its_alone_does_not_jump_ahead_of_multi_detector_runs() -> None:
    # ITS alone has one detector: the ITS rule does not apply, more detectors come first.
    its_only = run("its_only", "ITS")
    pair = run("pair", "TPC", "TOF")
    assert ids(sort_runs([its_only, pair])) == ["pair", "its_only"]


def test_more_detectors_first_otherwise() -> None:
    one = run("one", "TPC")
    three = run("three", "TPC", "TOF", "EMC")
    two = run("two", "MCH", "MID")
    none = run("none")
    assert ids(sort_runs([one, none, two, three])) == ["three", "two", "one", "none"]


def test_both_with_its_fall_back_to_detector_count() -> None:
    small = run("small", "ITS", "TPC")
    large = run("large", "ITS", "TPC", "TOF")
    assert ids(sort_runs([small, large])) == ["large", "small"]


def test_ties_keep_entry_order() -> None:
    a = run("a", "TPC", "TOF")
    b = run("b", "EMC", "MCH")
    c = run("c", "ITS", "MFT")
    d = run("d", "ITS", "FT0")
    e = run("e", "ZDC")
    f = run("f", "CPV")
    assert ids(sort_runs([a, b, c, d, e, f])) == ["c", "d", "a", "b", "e", "f"]
    assert ids(sort_runs([f, e, d, c, b, a])) == ["d", "c", "b", "a", "f", "e"]


def test_detectors_sorted_inside_each_run_without_touching_input() -> None:
    original = run("x", "TPC", "ITS", "EMC")
    [listed] = sort_runs([original])
    assert list(listed.detectors) == ["EMC", "ITS", "TPC"]
    assert list(original.detectors) == ["TPC", "ITS", "EMC"]
    assert listed.runNumber == 1 and listed.HasField("runNumber")


DETECTORS = ["ITS", "TPC", "TOF", "EMC", "MCH", "MFT", "ZDC"]
runs_strategy = st.lists(
    st.lists(st.sampled_from(DETECTORS), unique=True, max_size=5), max_size=12
).map(lambda dets: [run(f"env{i}", *d) for i, d in enumerate(dets)])


def _group_key(info: kafka_pb2.EnvInfo) -> tuple[int, int]:
    multi = len(info.detectors) >= 2
    group = 0 if multi and "ITS" in info.detectors else 1 if multi else 2
    return group, -len(info.detectors)


@given(runs_strategy)
def test_sort_equals_the_total_preorder_and_is_stable(runs: list[kafka_pb2.EnvInfo]) -> None:
    # The comparator is consistent: the stable sort equals a stable sort by an explicit key.
    assert ids(sort_runs(runs)) == ids(sorted(runs, key=_group_key))


@given(runs_strategy)
def test_every_adjacent_pair_respects_the_rule(runs: list[kafka_pb2.EnvInfo]) -> None:
    listed = sort_runs(runs)
    for first, second in itertools.pairwise(listed):
        assert compare_runs(first, second) <= 0


def test_running_set_add_and_remove() -> None:
    active = ActiveRuns()
    active.entered(run("a", "TPC"))
    active.entered(run("b", "ITS", "TPC"))
    assert active.ids() == ("a", "b")
    active.entered(run("a", "TPC", state="CONFIGURED"))
    assert active.ids() == ("b",)
    active.entered(run("b", state="UNKNOWN"))  # DESTROY
    assert active.ids() == ()
    active.entered(run("never-running", state="DEPLOYED"))  # absent ids are ignored
    assert active.ids() == ()


def test_listing_is_sorted_and_stamped() -> None:
    active = ActiveRuns()
    active.entered(run("a", "TPC"))
    active.entered(run("b", "TPC", "ITS"))
    listing = active.listing(timestamp_ms=123)
    assert listing.timestamp == 123
    assert ids(list(listing.activeRuns)) == ["b", "a"]
    assert list(listing.activeRuns[0].detectors) == ["ITS", "TPC"]
    assert list(ActiveRuns().listing(5).activeRuns) == []


def test_stored_copy_is_independent_of_caller_message() -> None:
    active = ActiveRuns()
    info = run("a", "TPC")
    active.entered(info)
    info.detectors.append("TOF")
    assert list(active.listing(0).activeRuns[0].detectors) == ["TPC"]


def test_concurrent_updates_lose_nothing() -> None:
    active = ActiveRuns()

    def cycle(n: int) -> None:
        for i in range(200):
            active.entered(run(f"t{n}-{i}", "TPC"))
            if i % 2:
                active.entered(run(f"t{n}-{i}", state="CONFIGURED"))

    threads = [threading.Thread(target=cycle, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(active.ids()) == sorted(f"t{n}-{i}" for n in range(4) for i in range(0, 200, 2))


def test_cached_listing_follows_every_change_of_the_set() -> None:
    active = ActiveRuns()
    active.entered(run("a", "TPC"))
    first = active.listing(1)
    active.entered(run("b", "TPC", "ITS"))
    assert ids(list(active.listing(2).activeRuns)) == ["b", "a"]
    active.entered(run("a", "TPC", "TOF", "EMC"))  # re-entered with other detectors
    listing = active.listing(3)
    assert ids(list(listing.activeRuns)) == ["b", "a"]
    assert list(listing.activeRuns[1].detectors) == ["EMC", "TOF", "TPC"]
    active.entered(run("b", state="CONFIGURED"))
    assert ids(list(active.listing(4).activeRuns)) == ["a"]
    active.entered(run("never-running", state="DEPLOYED"))  # no change
    assert ids(list(active.listing(5).activeRuns)) == ["a"]
    assert ids(list(first.activeRuns)) == ["a"]  # a listing given out earlier is untouched


def test_a_listing_is_the_callers_to_change() -> None:
    active = ActiveRuns()
    active.entered(run("a", "TPC"))
    listing = active.listing(1)
    listing.activeRuns[0].detectors.append("ZDC")
    listing.activeRuns.add(environmentId="intruder")
    again = active.listing(2)
    assert ids(list(again.activeRuns)) == ["a"] and list(again.activeRuns[0].detectors) == ["TPC"]
    assert (listing.timestamp, again.timestamp) == (1, 2)


changes_strategy = st.lists(
    st.tuples(
        st.integers(0, 7),
        st.lists(st.sampled_from(DETECTORS), unique=True, max_size=5),
        st.sampled_from(["RUNNING", "RUNNING", "CONFIGURED", "UNKNOWN"]),
        st.sampled_from([0, 1, 127, 128, 1_700_000_000_123]),
    ),
    max_size=40,
)


@given(changes_strategy)
def test_encoded_listing_is_the_listing_serialized_after_any_changes(
    changes: list[tuple[int, list[str], str, int]],
) -> None:
    active = ActiveRuns()
    for env, detectors, state, timestamp in changes:
        active.entered(run(f"env{env}", *detectors, state=state))
        encoded, count = active.encoded_listing(timestamp)
        expected = active.listing(timestamp)
        assert encoded == expected.SerializeToString()  # same bytes, canonical
        assert count == len(expected.activeRuns)
        assert kafka_pb2.ActiveRunsList.FromString(encoded) == expected
