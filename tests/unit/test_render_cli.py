"""`onestop-bridge render`: the dry-run contract of design.md §4, end to end."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.pipeline import Pipeline
from bridge.render import render_lines
from bridge.settings import Settings
from events import event, line, row

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "schemas" / "notification.schema.json").read_text())
FIXTURES = ROOT / "tests" / "fixtures" / "debezium"


def run_render(stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bridge.cli", "render", *args], input=stdin,
                          capture_output=True, text=True, encoding="utf-8", timeout=60)


def with_schema(document: dict) -> dict:
    """The same event as Kafka Connect's JsonConverter writes it with schemas.enable=true."""
    fields = [{"type": "int64", "optional": False, "field": "id"},
              {"type": "string", "optional": False, "field": "code"},
              {"type": "int16", "optional": False, "field": "status"},
              {"type": "string", "optional": True, "field": "due_at",
               "name": "io.debezium.time.ZonedTimestamp"},
              {"type": "bytes", "optional": True, "field": "fee_amount",
               "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "2"}}]
    value = {"type": "struct", "optional": True, "fields": fields,
             "name": "onestop.public.dossiers.Value"}
    schema = {"type": "struct", "name": "onestop.public.dossiers.Envelope",
              "fields": [{**value, "field": "before"}, {**value, "field": "after"},
                         {"type": "struct", "field": "source", "fields": []},
                         {"type": "string", "field": "op"}]}
    return {"schema": schema, "payload": document}


def mixed_input() -> list[str]:
    fee = row(id=2, code="000.00.23.H39-240612-0002", status=6, fee_amount="AdzWUA==")
    return [
        line(event("c", row(status=2), lsn=100)),                       # 1 RECEIVED
        "this is not json",                                             # 2 bad
        "null",                                                         # 3 tombstone
        line(event("c", row(status=2), lsn=100)),                       # 4 duplicate → nothing
        line(with_schema(event("c", fee, lsn=101))),                    # 5 FEE (base64 decimal)
        line({"hello": "world"}),                                       # 6 bad: not a change event
        line(event("u", row(status=5, note="Bổ sung CCCD"), before=None, lsn=102)),  # 7 SUPPLEMENT
        line(event("u", row(status=77), before=None, lsn=103)),         # 8 bad: unmapped status
        line(event("r", row(id=3, code="C-3", status=9), snapshot="true", lsn=104)),  # 9 nothing
        line(event("u", row(status=9), before=None, lsn=105)),          # 10 RESULT_READY
        "",                                                             # blank: ignored
        line({"ts_ms": 1}),                                             # heartbeat: nothing
    ]


def test_render_prints_notices_in_input_order_and_reports_bad_lines() -> None:
    result = run_render("\n".join(mixed_input()) + "\n")
    assert result.returncode == 1
    out = [json.loads(x) for x in result.stdout.splitlines()]
    assert [n["kind"] for n in out] == ["RECEIVED", "FEE_REQUESTED", "SUPPLEMENT_REQUESTED",
                                        "RESULT_READY"]
    assert "312.500 đồng" in out[1]["text"]
    for notice in out:
        jsonschema.validate(notice, SCHEMA)
    errors = result.stderr.splitlines()
    assert [e.split(":")[0] for e in errors[:3]] == ["line 2", "line 6", "line 8"]
    assert "not JSON" in errors[0] and "status 77" in errors[2]


def test_render_exits_zero_when_every_line_was_read(tmp_path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join([line(event("c", row(status=9))), "null"]) + "\n", encoding="utf-8")
    result = run_render("", str(path))
    assert result.returncode == 0, result.stderr
    [notice] = [json.loads(x) for x in result.stdout.splitlines()]
    assert notice["kind"] == "RESULT_READY" and notice["recipient"]["phone"] == "84909123456"
    assert "đã có kết quả" in notice["text"]


def test_a_file_saved_with_a_byte_order_mark_is_read(tmp_path) -> None:
    """Notepad's and Excel's "UTF-8" starts with one; line 1 was refused as not JSON."""
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join([line(event("c", row(status=9))), "null"]) + "\n", encoding="utf-8-sig")
    result = run_render("", str(path))
    assert result.returncode == 0, result.stderr
    assert [json.loads(x)["kind"] for x in result.stdout.splitlines()] == ["RESULT_READY"]
    notices = list(render_lines(Pipeline(Settings()), ["\ufeff" + line(event("c", row(status=9)))],
                                io.StringIO()))
    assert [n.kind for n in notices if n is not None] == ["RESULT_READY"]


def test_a_line_that_is_not_utf8_is_one_bad_line_not_the_end_of_input(tmp_path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join([line(event("c", row(status=2), lsn=1)).encode(),
                                 b"\xff\xfe{latin-1 \xe9}",
                                 line(event("u", row(status=9), before=None, lsn=2)).encode()]))
    result = run_render("", str(path))
    assert result.returncode == 1
    assert [json.loads(x)["kind"] for x in result.stdout.splitlines()] == ["RECEIVED",
                                                                           "RESULT_READY"]
    assert result.stderr.startswith("line 2: not JSON")


def test_render_reads_the_real_debezium_samples_without_crashing() -> None:
    lines = [json.dumps(json.loads(p.read_text())) for p in sorted(FIXTURES.glob("*.json"))]
    result = run_render("\n".join(lines))
    # The samples are of a `customers` table: valid events, but not dossiers.
    assert result.returncode == 1
    assert result.stdout == ""
    assert "column 'code' ([source.columns] code) is not in the event's row" in result.stderr


def test_render_config_errors_exit_2(tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[source.status_map]\nX = 42\n")
    result = run_render("", "--config", str(bad))
    assert result.returncode == 2 and "invalid configuration" in result.stderr
    assert run_render("", "--config", str(tmp_path / "missing.toml")).returncode == 2


def test_render_uses_the_vendor_mapping_from_config(tmp_path) -> None:
    config = tmp_path / "vendor.toml"
    config.write_text('[source.columns]\ncode = "MaHoSo"\nstatus = "TrangThai"\n'
                      '[source.status_map]\nDA_CO_KET_QUA = 9\n', encoding="utf-8")
    after = {k: v for k, v in row().items() if k not in ("code", "status")}
    after.update(MaHoSo="000.00.14.H56-200203-0118", TrangThai="DA_CO_KET_QUA")
    result = run_render(line(event("c", after)), "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["dossier_code"] == "000.00.14.H56-200203-0118"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children,
                                                                        max_size=5),
    max_leaves=20)
envelope_like = st.fixed_dictionaries(
    {"op": st.sampled_from(list("cudrtmx")), "source": json_values | st.just(event("c")["source"]),
     "before": json_values | st.just(row()), "after": json_values | st.just(row())})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text() | json_values.map(json.dumps) | envelope_like.map(json.dumps),
                max_size=6))
def test_arbitrary_input_lines_never_crash_render(lines: list[str]) -> None:
    errors = io.StringIO()
    items = list(render_lines(Pipeline(Settings()), [x.replace("\n", " ") for x in lines], errors))
    notices = [i for i in items if i is not None]
    for notice in notices:
        jsonschema.validate(notice.to_json(), SCHEMA)
    assert errors.getvalue().count("\n") == sum(1 for i in items if i is None)
