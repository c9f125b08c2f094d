"""The alert-expression splitter the Prometheus scrape test relies on."""

from __future__ import annotations

from promql import concrete, operands


def test_threshold_and_set_operators_are_split_off() -> None:
    found = operands('sum by (job) (x{a!="b", c=~"d|e"}) > 100 and deriv(sum(x)[10m:1m]) > 0')
    assert [(o.expr, o.must_have_data) for o in found] == [
        ('sum by (job) (x{a!="b", c=~"d|e"})', True), ("deriv(sum(x)[10m:1m])", True)]


def test_unless_right_side_and_absent_may_be_empty() -> None:
    found = operands("sum by (job) (lag) > 0 unless on (job) sum by (job) (rate(c[10m])) > 0")
    assert [(o.expr, o.must_have_data) for o in found] == [
        ("sum by (job) (lag)", True), ("sum by (job) (rate(c[10m]))", False)]
    found = operands('up{job="b"} == 0 or absent(up{job="b"})')
    assert [o.must_have_data for o in found] == [True, False]


def test_parenthesised_unless_stays_one_operand() -> None:
    [only] = operands("sum by (job) (x unless x offset 10m) > 0")
    assert only.expr == "sum by (job) (x unless x offset 10m)" and only.must_have_data


def test_grafana_variables_become_concrete() -> None:
    assert concrete("rate(x[$__rate_interval]) + increase(y[$__range])") == \
        "rate(x[1m]) + increase(y[1h])"
