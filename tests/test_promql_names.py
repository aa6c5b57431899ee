"""tests/promql.py finds the metric names of an expression, and nothing else."""

from __future__ import annotations

import re

import pytest

from tests.promql import PromQLError, metric_names


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("scheduler_sessions", ["scheduler_sessions"]),
        ('scheduler_hosts{state="connected"} > 0.9 * 10000', ["scheduler_hosts"]),
        (
            "histogram_quantile(0.99, sum by (instance, le) (rate(m_bucket[5m]))) > 1",
            ["m_bucket"],
        ),
        ('sum by (le) (rate(x_bucket{le="0.5", reason=~"a|b"}[5m]))', ["x_bucket"]),
        ("sum(x) by (le)", ["x"]),
        ("SUM BY (le) (x)", ["x"]),
        ("topk(5, x)", ["x"]),
        ("a and on (instance) group_left (version) b or c unless d", ["a", "b", "c", "d"]),
        ("a * on (job) group_right b", ["a", "b"]),
        ("a > bool b", ["a", "b"]),
        ("sum(rate(a[5m] offset 1h)) > 10 * max_over_time(a[1h:1m])", ["a", "a"]),
        ("rate(a[5m] offset -30m) @ start()", ["a"]),
        ('{__name__="metric_x", job="y"}', ["metric_x"]),
        ('count_values("value", build_info)', ["build_info"]),
        ('label_replace(up, "scheduler_fake", "$1", "src", "(.*)")', ["up"]),
        ("rate(x_total[$__rate_interval])", ["x_total"]),
        ('x{job=~"$job", instance=~"${instance}"}', ["x"]),
        ("job:scheduler_hosts:sum", ["job:scheduler_hosts:sum"]),
        ("x # a comment naming y\n+ z", ["x", "z"]),
        ("-x + Inf - NaN", ["x"]),
        ("1 + 2.5e3 * 0x1f", []),
        ("atan2(x, y)", ["x", "y"]),
        ("x atan2 y", ["x", "y"]),
    ],
)
def test_metric_names(expr: str, names: list[str]) -> None:
    assert metric_names(expr) == names


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("rat(x[5m])", "unknown function 'rat'"),
        ("histogram_quantil(0.9, x)", "unknown function 'histogram_quantil'"),
        ("sum(x", "unclosed '('"),
        ("x)", "unbalanced ')'"),
        ("rate(x[5m)", "unclosed '['"),
        ("sum by le (x)", "'by' without a label list"),
        ("x ? y", "unexpected '?'"),
    ],
)
def test_what_it_cannot_read_is_an_error(expr: str, problem: str) -> None:
    with pytest.raises(PromQLError, match=re.escape(problem)):
        metric_names(expr)
