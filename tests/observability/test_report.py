"""`onestop-bridge report` against a ledger filled by the bridge's own pieces.

Every figure the report prints is checked against a direct SQL sum over the ledger's
tables, so a director's number can always be traced back to rows.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from ledger_fill import FillResult, fill
from sqlalchemy import text

from bridge import dburl
from bridge.report import build_report, main
from bridge.report import text as text_report
from bridge.report.fmt import compact, number, percent, vnd
from bridge.report.ledger_view import DossierResult, Followers, NoticeRow, Period, open_engine
from bridge.report.summary import Cell, build
from bridge.samples import DayPlan
from bridge.sandbox import SandboxHandle

VN = ZoneInfo("Asia/Ho_Chi_Minh")
DAY = date(2026, 11, 27)
SMS = 350
# Small enough to run in seconds; phones missing for some dossiers give dead letters.
PLAN = DayPlan(dossiers=30, seed=11, missing_phone=0.15)
SAVINGS = ("SELECT sum(sms_equivalent_vnd - price_vnd) FROM notifications "
           "WHERE status = 'sent' AND channel <> 'sms'")


@pytest.fixture(scope="module")
def filled(sandbox: SandboxHandle,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, FillResult]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'ledger.db'}"
    result = fill(url, sandbox.url, PLAN, deferred_phones=2)
    yield url, result


def sql(url: str, query: str) -> list[tuple]:
    engine = dburl.create_engine("ledger.url", url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(query))]
    finally:
        engine.dispose()


def report_of(url: str, first: date = DAY, last: date = DAY):  # type: ignore[no-untyped-def]
    engine = open_engine(url)
    try:
        return build_report(engine, Period(first, last, VN), SMS)
    finally:
        engine.dispose()


def test_fill_exercised_every_outcome(filled: tuple[str, FillResult]) -> None:
    _, result = filled
    assert result.outcomes.get("sent", 0) > 50
    assert result.outcomes.get("dead", 0) >= 1, "dossiers without a phone must dead-letter"
    assert result.outcomes.get("deferred", 0) >= 1, "the night ban must leave notices waiting"


def test_totals_match_direct_sql_over_the_ledger(filled: tuple[str, FillResult]) -> None:
    url, _ = filled
    r = report_of(url)
    by_channel = dict(sql(url, "SELECT channel, count(*) FROM notifications "
                               "WHERE status = 'sent' GROUP BY channel"))
    assert r.sent_by_channel() == by_channel
    assert set(by_channel) == {"zalo_oa", "zns", "sms"}, "the sample day uses every channel"
    [(total,)] = sql(url, "SELECT count(*) FROM notifications")
    [(dead,)] = sql(url, "SELECT count(*) FROM notifications WHERE status = 'dead'")
    assert (r.total, r.dead, r.sent) == (total, dead, sum(by_channel.values()))
    assert r.waiting == total - r.sent - dead > 0
    [(cost,)] = sql(url, "SELECT sum(price_vnd) FROM notifications WHERE status = 'sent'")
    [(attempt_cost,)] = sql(url, "SELECT sum(price_vnd) FROM delivery_attempts WHERE result = 'ok'")
    assert r.cost_vnd == cost == attempt_cost
    [(savings,)] = sql(url, SAVINGS)
    assert r.savings_vnd == savings > 0
    # Each notice's SMS text as gateways bill it, in parts (bridge/templates/sms.py).
    [(equivalent, fewest, most)] = sql(url, "SELECT sum(sms_equivalent_vnd), min(sms_equivalent_vnd), "
                                            "max(sms_equivalent_vnd) FROM notifications "
                                            "WHERE status = 'sent'")
    assert r.sms_equivalent_vnd == equivalent and (fewest, most) == (SMS, 4 * SMS)
    # No SMS fired for any notification that saved money.
    [(overlap,)] = sql(url, "SELECT count(*) FROM notifications n JOIN delivery_attempts a "
                            "ON a.idempotency_key = n.idempotency_key AND a.channel = 'sms' "
                            "AND a.result = 'ok' WHERE n.channel <> 'sms'")
    assert overlap == 0
    by_kind = dict(((k, c), n) for k, c, n in sql(
        url, "SELECT kind, CASE WHEN status = 'sent' THEN channel ELSE 'none' END, count(*) "
             "FROM notifications GROUP BY 1, 2"))
    assert r.by_kind_channel() == by_kind
    [(followers,)] = sql(url, "SELECT count(*) FROM follower_links")
    assert r.followers.total == r.followers.new_in_period == followers > 0


def test_notices_sent_before_the_ledger_kept_their_sms_equivalent_count_one_sms(
        filled: tuple[str, FillResult], tmp_path: Path) -> None:
    url, _ = filled
    copy = tmp_path / "old.db"
    copy.write_bytes(Path(url.removeprefix("sqlite:///")).read_bytes())
    old = f"sqlite:///{copy}"
    engine = dburl.create_engine("ledger.url", old)
    with engine.begin() as conn:
        conn.execute(text("UPDATE notifications SET sms_equivalent_vnd = NULL"))
    engine.dispose()
    r = report_of(old)
    [(savings,)] = sql(old, f"SELECT sum({SMS} - price_vnd) FROM notifications "
                            "WHERE status = 'sent' AND channel <> 'sms'")
    assert (r.sms_equivalent_vnd, r.savings_vnd) == (r.sent * SMS, savings)
    assert r.one_sms_assumed == r.sent
    assert (f"{r.sent} thông báo gửi trước khi hệ thống lưu số tiền SMS tương đương của từng "
            "thông báo được tính là một tin nhắn SMS.") in " ".join(text_report.render(r).split())
    assert report_of(url).one_sms_assumed == 0


def test_a_ledger_the_new_release_has_not_migrated_yet_is_named_not_misread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The report installed before `run` restarted: the ledger lacks the newest columns."""
    from bridge.ledger import migrate
    from bridge.ledger.migrate import discover
    url = f"sqlite:///{tmp_path / 'older.db'}"
    engine = dburl.create_engine("ledger.url", url)
    migrate(engine, discover()[:-1])
    engine.dispose()
    monkeypatch.setenv("ONESTOP_LEDGER__URL", url)
    assert main(["--to", "2026-11-30"]) == 2
    assert "start `onestop-bridge run` once to migrate it" in capsys.readouterr().err


def test_on_time_figures_are_derived_from_ledger_rows(filled: tuple[str, FillResult]) -> None:
    url, _ = filled
    r = report_of(url)
    [(ready,)] = sql(url, "SELECT count(DISTINCT dossier_key) FROM notifications "
                          "WHERE kind = 'RESULT_READY'")
    assert r.results_ready == ready > 0
    # The sample day's results are ready within hours of a due date days away.
    assert r.results_on_time == r.results_ready
    [(apologies,)] = sql(url, "SELECT count(*) FROM notifications WHERE kind = 'APOLOGY_RESCHEDULED'")
    assert r.apologies == apologies
    [(timed,)] = sql(url, "SELECT count(*) FROM notifications WHERE status = 'sent' "
                          "AND source_ts_ms IS NOT NULL")
    assert r.timed == timed and 0 < r.within_fast <= r.within_minute <= timed


def test_cli_formats_agree_with_the_ledger(filled: tuple[str, FillResult], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = filled
    monkeypatch.setenv("ONESTOP_LEDGER__URL", url)
    [(savings,)] = sql(url, SAVINGS)
    [(cost,)] = sql(url, "SELECT sum(price_vnd) FROM notifications WHERE status = 'sent'")

    assert main(["--from", "27/11/2026", "--to", "2026-11-27"]) == 0
    out = capsys.readouterr().out
    assert "BÁO CÁO" in out and "Ngày 27/11/2026" in out
    assert "Tiết kiệm so với SMS" in out and vnd(savings) in out and vnd(cost) in out
    assert re.search(r"\d{4,}", out.replace("2026", "")) is None, "numbers are grouped: 1.234"

    assert main(["--from", "2026-11-27", "--to", "2026-11-27", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert sum(int(x["sms_savings_vnd"]) for x in rows) == savings
    assert sum(int(x["cost_vnd"]) for x in rows) == cost
    assert len({(x["date"], x["channel"], x["kind"]) for x in rows}) == len(rows)
    assert {x["date"] for x in rows} == {"2026-11-27"}

    page = tmp_path / "report.html"
    assert main(["--from", "2026-11-27", "--to", "2026-11-27", "--format", "html",
                 "--out", str(page)]) == 0
    html = page.read_text(encoding="utf-8")
    assert html.count("<svg") == 2 and vnd(savings) in html
    assert "<script" not in html and 'src="http' not in html and "<link" not in html


def test_period_outside_the_data_is_empty_not_an_error(filled: tuple[str, FillResult],
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = filled
    r = report_of(url, date(2026, 11, 20), date(2026, 11, 26))
    assert (r.total, r.savings_vnd, r.followers.total) == (0, 0, 0)
    monkeypatch.setenv("ONESTOP_LEDGER__URL", url)
    assert main(["--from", "2026-11-20", "--to", "2026-11-26", "--format", "html",
                 "--out", "/dev/null"]) == 0
    assert main(["--from", "2026-11-20", "--to", "2026-11-26"]) == 0
    assert "Không có thông báo nào phát sinh trong kỳ báo cáo." in capsys.readouterr().out


def test_missing_ledger_and_bad_dates_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ONESTOP_LEDGER__URL", f"sqlite:///{tmp_path / 'nothing.db'}")
    assert main(["--from", "2026-11-01", "--to", "2026-11-30"]) == 2
    assert "no ledger" in capsys.readouterr().err
    assert not (tmp_path / "nothing.db").exists(), "the report must not create a ledger"
    assert main(["--from", "2026-11-30", "--to", "2026-11-01"]) == 2
    with pytest.raises(SystemExit):
        main(["--from", "30-11-2026"])


def test_what_cannot_be_read_or_written_is_one_line_not_a_traceback(
        filled: tuple[str, FillResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "garbage.db").write_text("garbage")
    monkeypatch.setenv("ONESTOP_LEDGER__URL", f"sqlite:///{tmp_path / 'garbage.db'}")
    assert main(["--to", "2026-11-30"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("onestop-bridge report: cannot read the ledger:") and err.count("\n") == 1
    monkeypatch.setenv("ONESTOP_LEDGER__URL", filled[0])
    assert main(["--to", "9999-12-31"]) == 2
    assert "out of range" in capsys.readouterr().err
    assert main(["--to", "2026-11-30", "--out", str(tmp_path / "no" / "such" / "r.txt")]) == 2
    assert "cannot write" in capsys.readouterr().err
    assert main(["--from", "2999-01-01"]) == 2
    assert "(--to defaults to today" in capsys.readouterr().err


def test_a_province_sized_month_keeps_its_columns_apart() -> None:
    r = build(Period(date(2026, 11, 1), date(2026, 11, 30), VN), SMS, [], [], Followers(0, 0))
    r.cells[(date(2026, 11, 3), "zns", "RECEIVED")] = Cell(notifications=1_199_498)
    r.cells[(date(2026, 11, 3), "none", "RECEIVED")] = Cell(notifications=502)
    lines = text_report.render(r).splitlines()
    [row] = [line for line in lines if line.lstrip().startswith("Tiếp nhận")]
    assert row.split()[-3:] == ["1.199.498", "502", "1.200.000"]
    assert max(len(line) for line in lines) <= 80


def test_the_pilot_figure_in_the_pilot_words() -> None:
    """4,694 Zalo messages at 350 đồng per SMS: "1.642.900 đồng", as Long An wrote in 2019."""
    moment = int(datetime(2019, 6, 20, 9, tzinfo=VN).timestamp() * 1000)
    rows = [NoticeRow("RECEIVED", "sent", "zalo_oa", moment, 0, SMS, SMS, 1.2)] * 4694
    r = build(Period(date(2019, 6, 6), date(2019, 7, 6), VN), SMS, rows, [], Followers(560, 560))
    out = " ".join(text_report.render(r).split())  # undo the 78-column wrapping
    assert "đạt 4.694 lượt, giảm chi phí tin nhắn 1.642.900 đồng" in out
    assert ("(giá cước tin nhắn SMS là 350 đồng/tin nhắn; tin có dấu dài quá 70 ký tự được "
            "tính thành nhiều tin)") in out
    assert "Từ ngày 06/06/2019 đến ngày 06/07/2019" in out


def test_a_dossier_that_got_an_apology_is_late_though_ready_by_the_new_date() -> None:
    """Mẫu 04 is written only for a dossier past its appointment (NĐ 61/2018)."""
    due = datetime(2026, 11, 25, 17, tzinfo=VN)
    ready = int(datetime(2026, 11, 24, 9, tzinfo=VN).timestamp() * 1000)
    results = [DossierResult("a", ready, due), DossierResult("b", ready, due, apologised=True),
               DossierResult("c", ready, None)]
    r = build(Period(date(2026, 11, 1), date(2026, 11, 30), VN), SMS, [], results,
              Followers(0, 0))
    assert (r.results_ready, r.results_on_time, r.results_without_due) == (3, 1, 1)
    assert re.search(r"Hồ sơ có kết quả đúng hẹn \.+ 1/2 \(50 %\)", text_report.render(r))


@pytest.mark.parametrize(("value", "shown"), [(0, "0"), (350, "350"), (1642900, "1.642.900"),
                                              (12345678, "12.345.678"), (2.5, "2,5")])
def test_vietnamese_number_format(value: float, shown: str) -> None:
    assert number(value) == shown


def test_large_amounts_on_a_chart_axis_are_in_words() -> None:
    assert [compact(v) for v in (45_000, 1_500_000, 300_000_000, 2_000_000_000)] == [
        "45.000", "1,5 triệu", "300 triệu", "2 tỷ"]


def test_vietnamese_percent_format() -> None:
    assert percent(39, 40) == "97,5 %"
    assert percent(1, 1) == "100 %"
    assert percent(0, 0) == "—"
    assert percent(1_199_498, 1_200_000) == "> 99,9 %" and percent(3, 1_200_000) == "< 0,1 %"
    assert percent(0, 5) == "0 %"


@pytest.mark.services
def test_postgresql_ledger_gives_the_same_figures(pg, sandbox: SandboxHandle) -> None:  # type: ignore[no-untyped-def]
    """Production keeps the ledger in PostgreSQL: same queries, same totals as direct SQL."""
    url = pg.create_database(f"report_{uuid.uuid4().hex[:8]}")
    result = fill(url, sandbox.url, DayPlan(dossiers=12, seed=5, missing_phone=0.2))
    r = report_of(url)
    assert r.sent == result.outcomes["sent"] and r.dead == result.outcomes.get("dead", 0)
    assert r.sent_by_channel() == dict(sql(url, "SELECT channel, count(*) FROM notifications "
                                                "WHERE status = 'sent' GROUP BY channel"))
    [(savings,)] = sql(url, SAVINGS)
    [(cost,)] = sql(url, "SELECT sum(price_vnd) FROM notifications WHERE status = 'sent'")
    assert (r.savings_vnd, r.cost_vnd) == (savings, cost)
    assert r.results_ready >= 1 and r.followers.total >= 1


def test_a_week_is_charted_per_day_and_a_day_per_hour() -> None:
    from bridge.report.buckets import buckets

    def at(d: int, h: int) -> int:
        return int(datetime(2026, 11, d, h, tzinfo=VN).timestamp() * 1000)

    rows = [NoticeRow("RECEIVED", "sent", "zns", at(24, 9), 150, 200, 350, 1.0),
            NoticeRow("RECEIVED", "sent", "zalo_oa", at(26, 14), 0, 350, 350, 1.0),
            NoticeRow("RECEIVED", "dead", "none", at(26, 15), 0, 0, 0, None)]
    week = build(Period(date(2026, 11, 23), date(2026, 11, 29), VN), SMS, rows, [], Followers(0, 0))
    b = buckets(week)
    assert b.unit == "ngày" and b.labels == [f"{d}/11" for d in range(23, 30)]
    assert b.counts["zns"] == [0, 1, 0, 0, 0, 0, 0] and b.counts["none"][3] == 1
    assert b.savings == [0, 200, 0, 350, 0, 0, 0]
    day = build(Period(date(2026, 11, 26), date(2026, 11, 26), VN), SMS, rows[1:], [],
                Followers(0, 0))
    assert buckets(day).labels == ["14h", "15h"]
    from bridge.report import html

    page = html.render(week)
    assert "Số thông báo theo ngày" in page and "Chưa gửi được" in page
