"""The operator commands: qr, feedback export, broadcast (real sandbox, real ledger)."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from pathlib import Path

import pytest
from citizen_harness import CODE, Bridge

from bridge.citizen import broadcast
from bridge.citizen.qr import lookup_link
from bridge.citizen.store import CitizenStore
from bridge.citizen.text import find_codes
from bridge.cli import main as cli


def write_config(oa: Bridge, tmp_path: Path) -> Path:
    config = tmp_path / "bridge.toml"
    config.write_text(f'[ledger]\nurl = "{oa.settings.ledger.url}"\n'
                      f'[zalo]\napp_id = "sandbox-app"\noa_secret_key = "sandbox-oa-secret"\n'
                      f'[oa]\noa_id = "{oa.settings.oa.oa_id}"\n', encoding="utf-8")
    return config


def test_qr_draws_the_receipt_link(oa: Bridge, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "receipt" / "qr.png"
    assert cli(["qr", "000.00.23.h39 240612 0001", "--out", str(out),
                "--config", str(write_config(oa, tmp_path))]) == 0
    url = capsys.readouterr().out.strip()
    assert url == f"https://zalo.me/{oa.settings.oa.oa_id}?tra-cuu={CODE}"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert find_codes(url) == [CODE], "a citizen who sends the link back gets the status"
    # The RECEIVED notice carries the very same link.
    received = oa.dossier()[0].notification
    assert lookup_link(oa.settings, CODE) in received.text
    assert cli(["qr", "not a code", "--out", str(out)]) == 2


def test_feedback_export_writes_csv_for_the_period(oa: Bridge, tmp_path: Path) -> None:
    store = CitizenStore(oa.ledger.engine)
    store.record_rating(CODE, "u-1", 4)
    store.record_feedback("u-2", CODE, "=HYPERLINK(\"http://evil\") quầy số 3 rất nhiệt tình")
    store.record_feedback("u-3", None, "Cần thêm chỗ gửi xe")
    out = tmp_path / "feedback.csv"
    today = datetime.now(timezone.utc).date().isoformat()
    assert cli(["feedback", "export", "--from", today, "--to", "2999-01-01", "--out", str(out),
                "--config", str(write_config(oa, tmp_path))]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert [r["type"] for r in rows] == ["rating", "feedback", "feedback"]
    assert rows[0]["score"] == "4" and rows[0]["dossier_code"] == CODE
    assert rows[1]["text"].startswith("'=HYPERLINK"), "no formula runs in a spreadsheet"
    assert rows[2]["text"] == "Cần thêm chỗ gửi xe" and rows[2]["dossier_code"] == ""
    assert cli(["feedback", "export", "--from", "2000-01-01", "--to", "2000-01-31",
                "--out", str(out), "--config", str(write_config(oa, tmp_path))]) == 0
    assert out.read_text(encoding="utf-8-sig").strip() == "type,at,dossier_code,user_id,score,text"


def _subscribe(oa: Bridge, users: list[str], topic: str) -> None:
    for user in users:
        oa.user_event("follow", user)
        oa.say(user, f"đăng ký {'tin tức' if topic == 'tin-tuc' else 'khẩn cấp'}")
    oa.replies(users[-1], 3)
    oa.settle()


def _daytime(monkeypatch: pytest.MonkeyPatch, hour_utc: int = 3) -> None:
    monkeypatch.setattr(broadcast, "now",
                        lambda: datetime(2026, 5, 4, hour_utc, 0, tzinfo=timezone.utc))


def test_broadcast_reaches_opted_in_followers_only_once(oa: Bridge, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    _subscribe(oa, ["b-1", "b-2", "b-3"], "tin-tuc")
    _subscribe(oa, ["b-9"], "khan-cap")
    _daytime(monkeypatch)                                   # 10:00 in Hồ Chí Minh City
    args = ["broadcast", "--topic", "tin-tuc", "--text", "Từ 01/6, Trung tâm nhận hồ sơ cả sáng thứ Bảy.",
            "--config", str(write_config(oa, tmp_path)), "--sandbox", oa.sandbox.url]
    assert cli(args + ["--dry-run"]) == 0
    dry = capsys.readouterr()
    assert "3 subscribers" in dry.out and "nothing sent" in dry.out and "TIN TỨC" in dry.out
    seq = oa.last_seq()
    assert cli(args) == 0
    done = capsys.readouterr()
    sent = [m for m in oa.messages(after=str(seq)) if m["text"] and m["text"].startswith("TIN TỨC")]
    assert sorted(m["user_id"] for m in sent) == ["b-1", "b-2", "b-3"]
    assert "hủy đăng ký tin tức" in sent[0]["text"]
    assert "sent 3" in done.out and "3/3" in done.err           # summary and progress bar
    assert cli(args) == 0                                       # the same broadcast again
    assert "sent 0, already reached before 3" in capsys.readouterr().out
    assert len([m for m in oa.messages(after=str(seq)) if (m["text"] or "").startswith("TIN TỨC")]) == 3


def test_news_waits_for_the_morning_but_an_emergency_goes_at_night(
        oa: Bridge, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A flood-tide warning at 23:00 used to be refused like the news (Zalo accepts CS
    messages at any hour)."""
    _subscribe(oa, ["n-1"], "tin-tuc")
    _subscribe(oa, ["n-2"], "khan-cap")
    seq = oa.last_seq()
    _daytime(monkeypatch, hour_utc=16)                      # 23:00 in Hồ Chí Minh City
    common = ["--config", str(write_config(oa, tmp_path)), "--sandbox", oa.sandbox.url]
    code = cli(["broadcast", "--topic", "tin-tuc", "--text", "Lịch làm việc mới", *common])
    assert code == broadcast.EXIT_NIGHT
    assert "news is not sent at night (22:00–06:00" in capsys.readouterr().err
    assert oa.messages(after=str(seq)) == []
    assert cli(["broadcast", "--topic", "khan-cap", "--text", "Cảnh báo triều cường", *common]) == 0
    [alert] = [m for m in oa.messages(after=str(seq)) if "Cảnh báo triều cường" in (m["text"] or "")]
    assert alert["user_id"] == "n-2"
    too_long = cli(["broadcast", "--topic", "tin-tuc", "--text", "x" * 1990,
                    "--config", str(write_config(oa, tmp_path))])
    assert too_long == 2
