"""`./dev.sh bench reliability` rewrites only the measured part of docs/reliability.md
(between its markers): the hand-written sections (issue 11's classes and their tests)
survive a rerun, and a page without the markers is refused, not overwritten."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.reliability import BEGIN, END, PageError, main, splice

PAGE = Path(__file__).parents[1] / "docs" / "reliability.md"
HAND_WRITTEN = ["## Edge disk", "## Broker and server hardening", "## Bounded KPI work",
                "## Control safety", "## Found by these tests"]
text = st.text(st.characters(exclude_categories=["Cs"]), max_size=200).filter(
    lambda t: BEGIN not in t and END not in t)


@settings(derandomize=True, max_examples=200)
@given(head=text, old=text, tail=text, new=text)
def test_splice_replaces_only_between_the_markers(head: str, old: str, tail: str,
                                                  new: str) -> None:
    page = f"{head}{BEGIN}\n{old}\n{END}{tail}"
    out = splice(page, new)
    assert out.startswith(head + BEGIN) and out.endswith(END + tail)
    assert new.strip("\n") in out
    assert splice(out, new) == out  # a rerun with the same figures changes nothing


@pytest.mark.parametrize("page", ["no markers at all", f"{END}\nx\n{BEGIN}\n",
                                  f"{BEGIN}\n{BEGIN}\nx\n{END}\n", f"{BEGIN}\nx\n"])
def test_a_page_without_one_pair_of_markers_is_refused(page: str) -> None:
    with pytest.raises(PageError):
        splice(page, "figures")


def test_a_rerun_keeps_the_hand_written_sections(tmp_path: Path) -> None:
    page = PAGE.read_text()
    hand = page.split(END, 1)[1]
    assert page.count(BEGIN) == 1 and all(section in hand for section in HAND_WRITTEN)
    results = tmp_path / "results.jsonl"
    results.write_text(json.dumps({
        "kind": "fault", "scenario": "probe fault", "injected": "nothing", "produced": 7,
        "stored": 7, "missing": 0, "duplicated": 0, "recovery_s": 0.5}) + "\n")
    copy = tmp_path / "reliability.md"
    copy.write_text(page)
    main(["--from", str(results), "-o", str(copy)])
    rerun = copy.read_text()
    assert rerun.split(END, 1)[1] == hand
    assert rerun.split(BEGIN, 1)[0] == page.split(BEGIN, 1)[0]
    assert "| probe fault | nothing | 7 | 0 | 0 | 0.5 s |" in rerun


def test_a_page_without_markers_is_left_as_it_was(tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    results.write_text("")
    copy = tmp_path / "reliability.md"
    copy.write_text("# hand-written only\n")
    with pytest.raises(SystemExit, match="BEGIN"):
        main(["--from", str(results), "-o", str(copy)])
    assert copy.read_text() == "# hand-written only\n"
