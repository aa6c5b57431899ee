"""The metric names a PromQL expression selects: a small lexer and a walk over its tokens.

Not a PromQL parser: it finds the vector selectors of an expression and nothing else, so
that a test can check every name against what the server exports. What it skips:

* function and aggregation names (``rate(``, ``histogram_quantile(``, ``sum by (le) (``):
  an identifier followed by ``(`` must be a known function, or the expression is refused,
  so a misspelled function is reported instead of read as a metric;
* keywords (``by``, ``without``, ``on``, ``ignoring``, ``group_left``, ``group_right``,
  ``and``, ``or``, ``unless``, ``bool``, ``offset``, ``atan2``, ``inf``, ``nan``) and the
  label lists after the grouping ones (``by (le, manager)``);
* label matchers (``{reason="disconnected", le=~"..."}``), except ``__name__="..."``,
  which names a metric;
* ranges, subqueries and durations (``[5m]``, ``[1h:1m]``, ``offset 1h``), strings,
  numbers, comments and Grafana's variables (``$__rate_interval``, ``${job}``,
  ``[[instance]]``).

The names come back as written, with their ``_total``, ``_bucket``, ``_sum`` or
``_count`` suffix; matching them with what a scrape exports is the caller's job.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

#: Prometheus' functions (as of 3.x), plus ``start``/``end`` of the ``@`` modifier.
_FUNCTION_NAMES: Final = """
    abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes
    clamp clamp_max clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year
    days_in_month deg delta deriv double_exponential_smoothing end exp floor
    histogram_avg histogram_count histogram_fraction histogram_quantile histogram_stddev
    histogram_stdvar histogram_sum holt_winters hour idelta increase info irate label_join
    label_replace last_over_time ln log10 log2 mad_over_time max_over_time min_over_time
    minute month pi predict_linear present_over_time quantile_over_time rad rate resets
    round scalar sgn sin sinh sort sort_by_label sort_by_label_desc sort_desc sqrt start
    stddev_over_time stdvar_over_time sum_over_time tan tanh time timestamp vector year
"""
FUNCTIONS: Final = frozenset(_FUNCTION_NAMES.split())
#: Aggregation operators: followed by ``(`` or by ``by``/``without``.
AGGREGATIONS: Final = frozenset(
    {"avg", "bottomk", "count", "count_values", "group", "limit_ratio", "limitk", "max"}
    | {"min", "quantile", "stddev", "stdvar", "sum", "topk"}
)
#: Keywords followed by a parenthesised list of label names (optional for group_*).
GROUPING: Final = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
#: What may follow an aggregation's name.
_AGGREGATION_FOLLOWERS: Final = frozenset({("op", "("), ("name", "by"), ("name", "without")})
#: Other words that are never a metric name (keywords are not case-sensitive).
KEYWORDS: Final = frozenset({"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"})

_TOKEN: Final = re.compile(
    r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<variable>\$\{[^}]*\}|\$\w+|\[\[\w+(?::\w+)?\]\])
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+(?:ms|[smhdwy]))+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<name>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^=<>@,(){}\[\]:])
    """,
    re.VERBOSE,
)


class PromQLError(ValueError):
    """The expression is not one this reader understands; the message says where."""


def tokens(expr: str) -> Iterator[tuple[str, str]]:
    """``(kind, text)`` pairs, without spaces and comments."""
    position = 0
    while position < len(expr):
        match = _TOKEN.match(expr, position)
        if match is None:
            raise PromQLError(f"unexpected {expr[position]!r} at {position} in {expr!r}")
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            yield kind, match.group()
        position = match.end()


def _skip_to_closing(items: list[tuple[str, str]], index: int, expr: str) -> int:
    """The index after the bracket that closes the one at ``index``."""
    opening = items[index][1]
    closing = {"(": ")", "{": "}", "[": "]"}[opening]
    depth = 0
    for position in range(index, len(items)):
        kind, text = items[position]
        if kind != "op":
            continue
        if text == opening:
            depth += 1
        elif text == closing:
            depth -= 1
            if depth == 0:
                return position + 1
    raise PromQLError(f"unclosed {opening!r} in {expr!r}")


def _name_matchers(items: list[tuple[str, str]], start: int, end: int) -> Iterator[str]:
    """``__name__="x"`` inside the matchers ``items[start:end]``."""
    for position in range(start, end - 2):
        (k1, t1), (k2, t2), (k3, t3) = items[position : position + 3]
        if (k1, t1, k2, t2, k3) == ("name", "__name__", "op", "=", "string"):
            yield t3[1:-1]


def metric_names(expr: str) -> list[str]:
    """The metric names ``expr`` selects, in order of appearance (repeats kept)."""
    items = list(tokens(expr))
    names: list[str] = []
    index = 0
    while index < len(items):
        kind, text = items[index]
        following = items[index + 1] if index + 1 < len(items) else ("", "")
        if kind == "op" and text == "{":
            end = _skip_to_closing(items, index, expr)
            names.extend(_name_matchers(items, index + 1, end - 1))
            index = end
            continue
        if kind == "op" and text == "[":
            index = _skip_to_closing(items, index, expr)
            continue
        if kind != "name":
            index += 1
            continue
        word = text.lower()
        if word in GROUPING:
            index += 1
            if following == ("op", "("):
                index = _skip_to_closing(items, index, expr)
            elif word in {"by", "without", "on", "ignoring"}:
                raise PromQLError(f"{text!r} without a label list in {expr!r}")
            continue
        if word in KEYWORDS:
            index += 1
            continue
        if word in AGGREGATIONS and (following[0], following[1].lower()) in _AGGREGATION_FOLLOWERS:
            index += 1
            continue
        if following == ("op", "("):
            if text not in FUNCTIONS:
                raise PromQLError(f"unknown function {text!r} in {expr!r}")
            index += 1
            continue
        names.append(text)
        index += 1
    _check_balanced(items, expr)
    return names


def _check_balanced(items: list[tuple[str, str]], expr: str) -> None:
    stack: list[str] = []
    pairs = {")": "(", "}": "{", "]": "["}
    for kind, text in items:
        if kind != "op":
            continue
        if text in "({[":
            stack.append(text)
        elif text in pairs and (not stack or stack.pop() != pairs[text]):
            raise PromQLError(f"unbalanced {text!r} in {expr!r}")
    if stack:
        raise PromQLError(f"unclosed {stack[-1]!r} in {expr!r}")
