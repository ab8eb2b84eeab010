"""Grafana's expansion of InfluxQL panel queries, case by case as Grafana's own tests of
its InfluxDB datasource state them (interpolateQueryExpr), plus the interval ladder."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from shopfloor.dashboards.macros import (
    ALL,
    Variable,
    calculate_interval_ms,
    escape_regex,
    expand,
    interpolate,
    interval_text,
    round_interval,
)


def one(name: str, value: str | list[str], **kw: object) -> dict[str, Variable]:
    return {name: Variable(name, value, **kw)}  # type: ignore[arg-type]


def test_single_value_outside_a_regex_is_left_as_is() -> None:
    assert interpolate("select that where path = '$v'", one("v", "/special/path")) == (
        "select that where path = '/special/path'")


def test_single_value_inside_a_regex_is_escaped() -> None:
    for query in ("where path =~ /$v/", "where path !~ /^$v$/"):
        assert r"\/special\/path" in interpolate(query, one("v", "/special/path"))


def test_multi_value_becomes_an_escaped_group() -> None:
    got = interpolate("path = '$v'", one("v", ["/special/path", "/some/other/path"],
                                         multi=True))
    assert got == r"path = '(\/special\/path|\/some\/other\/path)'"


def test_all_without_custom_value_joins_every_option() -> None:
    variables = one("v", ALL, multi=False, include_all=True, options=("env", "env2", "env3"))
    assert interpolate("thing =~ /^($v)$/", variables) == "thing =~ /^((env|env2|env3))$/"
    assert interpolate("thing =~ /^$v$/", variables) == "thing =~ /^(env|env2|env3)$/"


def test_all_with_custom_value_is_used_verbatim() -> None:
    variables = one("v", [ALL], multi=True, include_all=True, all_value=".*", options=("a",))
    assert interpolate('"site" =~ /^$v$/', variables) == '"site" =~ /^.*$/'


def test_numbers_are_never_escaped_and_unknown_names_stay() -> None:
    assert interpolate("value / $v from /^m$/ and $other", one("v", "1.0")) == (
        "value / 1.0 from /^m$/ and $other")


def test_braced_and_bracketed_forms() -> None:
    variables = one("v", ["a.b", "c"], multi=True)
    assert interpolate("${v} [[v]]", variables) == r"(a\.b|c) (a\.b|c)"


def test_backend_macros() -> None:
    q = "SELECT mean(x) FROM m WHERE $timeFilter GROUP BY time($__interval) LIMIT $__interval_ms"
    got = expand(q, {}, 1000, 2000, 20000)
    assert got == ("SELECT mean(x) FROM m WHERE time >= 1000ms and time <= 2000ms "
                   "GROUP BY time(20s) LIMIT 20000")


def test_interval_follows_grafanas_ladder_and_floor() -> None:
    six_hours = 6 * 3600 * 1000
    assert calculate_interval_ms(0, six_hours, 1000) == 20000  # 21.6 s -> 20 s
    assert calculate_interval_ms(0, six_hours, 1000, min_interval_ms=60000) == 60000
    assert [round_interval(x) for x in (5, 14, 1499, 1500, 44999, 89999, 10**12)] == [
        1, 10, 1000, 2000, 30000, 60000, 31536000000]
    assert [interval_text(x) for x in (500, 1000, 60000, 3600000, 86400000)] == [
        "500ms", "1s", "1m", "1h", "1d"]


@given(st.text(alphabet=st.characters(blacklist_characters="^$", codec="utf-8"), max_size=30))
def test_escaped_value_matches_exactly_itself(value: str) -> None:
    assert re.fullmatch(escape_regex(value), value, flags=re.DOTALL)
