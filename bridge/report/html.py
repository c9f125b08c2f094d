"""One self-contained HTML page for a provincial director: headline figures, two charts,
two tables and how the figures were computed. Inline CSS and SVG only: no script, no
font or chart library from a CDN, so it opens offline and prints on A4."""

from __future__ import annotations

from datetime import datetime
from html import escape

from bridge.report import headline, svg
from bridge.report.buckets import buckets
from bridge.report.fmt import (CHANNEL_COLOUR, channel_label, kind_label, number,
                               percent, sort_channels, sort_kinds, vnd)
from bridge.report.summary import Report

SAVINGS_COLOUR = "#1a8f4c"
CSS = """
body{margin:0;background:#f4f6f9;color:#1d2530;font:15px/1.5 "Segoe UI",Roboto,"Noto Sans",Arial,sans-serif}
main{max-width:1100px;margin:0 auto;padding:28px 32px 40px}
header{border-bottom:3px solid #0068ff;margin-bottom:20px;padding-bottom:10px}
h1{font-size:23px;margin:0 0 4px;letter-spacing:.2px}
h2{font-size:18px;margin:30px 0 10px}
.period{font-size:17px;color:#3a4452}
.lead{background:#fff;border-left:5px solid #1a8f4c;padding:14px 18px;font-size:16.5px;margin:18px 0}
.cards{display:grid;grid-template-columns:repeat(3,1fr);gap:14px}
.card{background:#fff;border-radius:8px;padding:14px 16px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.card .label{color:#5b6472;font-size:14px}
.card .value{font-size:27px;font-weight:700;margin:2px 0}
.card .sub{color:#5b6472;font-size:13.5px}
.card.good .value{color:#1a8f4c}
.panel{background:#fff;border-radius:8px;padding:14px 16px 8px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.legend{display:flex;gap:18px;flex-wrap:wrap;font-size:14px;margin:0 0 6px}
.legend i{display:inline-block;width:13px;height:13px;border-radius:2px;margin-right:6px;vertical-align:-1px}
table{border-collapse:collapse;width:100%;background:#fff;font-size:14.5px}
th,td{padding:7px 10px;border-bottom:1px solid #e3e7ee;text-align:right}
th:first-child,td:first-child{text-align:left}
th{background:#eef2f8;font-weight:600}
tr.total td{font-weight:700;border-top:2px solid #c9d1dd}
.note{color:#5b6472;font-size:13.5px}
footer{margin-top:28px;color:#5b6472;font-size:13px}
@media print{body{background:#fff}.card,.panel{box-shadow:none;border:1px solid #ddd}
.card,.panel,tr,svg{break-inside:avoid}}
@media (max-width:700px){.cards{grid-template-columns:1fr}main{padding:12px}svg{height:auto}}
"""


def render(r: Report, generated: datetime | None = None) -> str:
    generated = generated or datetime.now(r.period.zone)
    body = [_header(r), f'<p class="lead">{escape(headline.savings_sentence(r))}</p>',
            _cards(r), *_charts(r), _channel_table(r), _kind_table(r), _method(r, generated)]
    return ("<!DOCTYPE html>\n<html lang=\"vi\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(headline.PAGE_TITLE)} – {escape(headline.period_line(r))}"
            f"</title><style>{CSS}</style></head><body><main>\n" + "\n".join(body)
            + "\n</main></body></html>\n")


def _header(r: Report) -> str:
    return (f"<header><h1>{escape(headline.TITLE)}</h1>"
            f'<div class="period">{escape(headline.period_line(r))}</div></header>')


def _card(label: str, value: str, sub: str, good: bool = False) -> str:
    cls = "card good" if good else "card"
    return (f'<div class="{cls}"><div class="label">{escape(label)}</div>'
            f'<div class="value">{escape(value)}</div><div class="sub">{escape(sub)}</div></div>')


def _cards(r: Report) -> str:
    judged = r.results_ready - r.results_without_due
    on_time_sub = f"{number(r.results_on_time)}/{number(judged)} hồ sơ"
    if r.apologies:
        on_time_sub += f"; {number(r.apologies)} phiếu xin lỗi, hẹn lại"
    cards = [
        _card("Tiết kiệm so với gửi SMS", vnd(r.savings_vnd),
              f"{number(r.zalo_sent)} tin qua Zalo thay cho SMS", good=True),
        _card("Thông báo đã gửi đến người dân", number(r.sent),
              f"{percent(r.sent, r.total)} trong tổng số {number(r.total)} thông báo"
              + (f"; {number(r.unreachable)} không có số nhận tin" if r.unreachable else "")),
        _card("Chi phí thực tế", vnd(r.cost_vnd),
              f"Nếu gửi toàn bộ bằng SMS: {vnd(r.sms_equivalent_vnd)}"),
        _card("Gửi đi trong 5 giây sau khi cập nhật hồ sơ", percent(r.within_fast, r.timed),
              f"Trong vòng 1 phút: {percent(r.within_minute, r.timed)}"),
        _card("Hồ sơ có kết quả đúng hẹn", percent(r.results_on_time, judged), on_time_sub),
        _card("Người dân liên kết Zalo OA", number(r.followers.total),
              f"Liên kết mới trong kỳ: {number(r.followers.new_in_period)}"),
    ]
    return '<div class="cards">' + "".join(cards) + "</div>"


def _charts(r: Report) -> list[str]:
    b = buckets(r)
    if not b.labels:
        return ['<h2>Biểu đồ</h2><p class="note">Không có thông báo nào trong kỳ báo cáo.</p>']
    channels = sort_channels(set(b.counts))
    series = [svg.Series(channel_label(c, short=True), CHANNEL_COLOUR.get(c, "#888"), b.counts[c])
              for c in channels]
    legend = "".join(f'<span><i style="background:{s.colour}"></i>{escape(s.name)}</span>'
                     for s in series)
    bars = svg.stacked_bars(f"Số thông báo theo {b.unit} và kênh gửi", b.labels, series)
    line = svg.cumulative_line(f"Tiền tiết kiệm cộng dồn theo {b.unit}", b.labels, b.savings,
                               colour=SAVINGS_COLOUR, fmt=lambda v: vnd(v))
    return [f"<h2>Số thông báo theo {b.unit}, chia theo kênh gửi</h2>",
            f'<div class="panel"><div class="legend">{legend}</div>{bars}</div>',
            "<h2>Tiền tiết kiệm cộng dồn so với gửi SMS</h2>",
            f'<div class="panel">{line}</div>']


def _channel_table(r: Report) -> str:
    sent, cost = r.sent_by_channel(), r.cost_by_channel()
    rows = []
    for c in sort_channels(set(sent) - {"none"}):
        unit = cost.get(c, 0) / sent[c] if sent[c] else 0
        rows.append(f"<tr><td>{escape(channel_label(c))}</td><td>{number(sent[c])}</td>"
                    f"<td>{percent(sent[c], r.sent)}</td><td>{vnd(unit) if unit else 'miễn phí'}</td>"
                    f"<td>{vnd(cost.get(c, 0))}</td></tr>")
    rows.append(f'<tr class="total"><td>Cộng</td><td>{number(r.sent)}</td><td></td><td></td>'
                f"<td>{vnd(r.cost_vnd)}</td></tr>")
    return ("<h2>Theo kênh gửi</h2><table><tr><th>Kênh</th><th>Số tin đã gửi</th><th>Tỷ lệ</th>"
            "<th>Đơn giá</th><th>Chi phí</th></tr>" + "".join(rows) + "</table>")


def _kind_table(r: Report) -> str:
    table = r.by_kind_channel()
    channels = sort_channels({c for _, c in table})
    head = "".join(f"<th>{escape(channel_label(c, short=True))}</th>" for c in channels)
    rows = []
    for kind in sort_kinds({k for k, _ in table}):
        counts = [table.get((kind, c), 0) for c in channels]
        cells = "".join(f"<td>{number(n) if n else '–'}</td>" for n in counts)
        rows.append(f"<tr><td>{escape(kind_label(kind))}</td>{cells}<td>{number(sum(counts))}</td></tr>")
    totals = "".join(f"<td>{number(sum(n for (_, ch), n in table.items() if ch == c))}</td>"
                     for c in channels)
    rows.append(f'<tr class="total"><td>Cộng</td>{totals}<td>{number(r.total)}</td></tr>')
    return ("<h2>Theo loại thông báo</h2><table><tr><th>Loại thông báo</th>" + head
            + "<th>Cộng</th></tr>" + "".join(rows) + "</table>")


def _method(r: Report, generated: datetime) -> str:
    return (f"<footer><p><b>Cách tính.</b> {escape(headline.method(r))}</p>"
            f"<p>Lập lúc {generated:%H:%M} ngày {generated:%d/%m/%Y} bởi onestop-bridge.</p></footer>")
