"""Through `onestop-bridge run` (in-process `bridge.run.Bridge`): the citizen follows and
shares the phone via the run's own webhook; change events from Kafka then reach them on the
free OA channel, and the delivery receipt of RESULT_RETURNED brings the rating prompt."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import httpx
import pytest
from citizen_harness import APP_ID, CODE, OA_ID, OA_SECRET, PHONE
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from events import event, row
from sqlalchemy import select
from waiting import wait_for

from bridge.dispatch import sandbox_settings
from bridge.ledger.tables import notifications
from bridge.run import Bridge
from bridge.sandbox import run_in_thread
from bridge.settings import load_settings

pytestmark = pytest.mark.services
OTHER_PHONE = "84912000555"


def test_follow_link_then_notices_go_out_on_zalo_oa(broker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    topic = f"cit{uuid.uuid4().hex[:6]}.public.dossiers"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for future in admin.create_topics([NewTopic(topic, num_partitions=2)]).values():
        future.result(15)
    sandbox = run_in_thread(scenario={"delivery_delay_ms": 20})
    settings = sandbox_settings(load_settings(
        source={"topic": topic},
        kafka={"bootstrap_servers": broker.bootstrap, "group_id": f"g-{topic}",
               "extra": {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}},
        ledger={"url": f"sqlite:///{tmp_path / 'ledger.db'}"},
        http={"host": "127.0.0.1", "port": 0},
        zalo={"app_id": APP_ID, "oa_secret_key": OA_SECRET}, oa={"oa_id": OA_ID},
        dispatch={"workers": 2, "backoff_initial_s": 0.01, "backoff_max_s": 0.05}), sandbox.url)
    bridge = Bridge(settings)
    stop = threading.Event()
    runner = threading.Thread(target=bridge.run, args=(stop,), daemon=True)
    sb = httpx.Client(base_url=sandbox.url, timeout=10)
    try:
        http = bridge.start_http()
        sb.put("/sandbox/webhook", json={"url": http.url + "/webhook/zalo"}).raise_for_status()
        runner.start()
        for name, extra in (("follow", {}), ("user_submit_info", {"phone": PHONE})):
            reply = sb.post("/sandbox/user-event", json={"event_name": name, "user_id": "e2e-1",
                                                         **extra}).json()
            assert reply["status"] == 200
        wait_for(lambda: len(sb.get("/sandbox/messages", params={"user_id": "e2e-1"}).json()) >= 3,
                 20, message="welcome, phone request and 'a code was sent'")
        # The citizen reads the code Zalo delivered to their number, and types it back.
        [code] = [m["template_data"]["otp"] for m in sb.get(
            "/sandbox/messages", params={"channel": "zns", "phone": PHONE}).json()]
        reply = sb.post("/sandbox/user-event", json={"event_name": "user_send_text",
                                                     "user_id": "e2e-1", "text": code}).json()
        assert reply["status"] == 200
        wait_for(lambda: len(sb.get("/sandbox/messages", params={"user_id": "e2e-1"}).json()) >= 4,
                 20, message="the link confirmation")
        assert httpx.get(http.url + "/readyz", timeout=5).json()["checks"]["webhook_inbox"]["ok"]

        producer = Producer({"bootstrap.servers": broker.bootstrap})
        for doc in (event("c", row()), event("c", row(id=2, code="000.00.23.H39-240612-0002",
                                                       applicant_phone=OTHER_PHONE)),
                    event("u", row(status=10, finished_at="2024-06-19T03:00:00Z"), row(status=9))):
            producer.produce(topic, key=json.dumps({"id": doc["after"]["id"]}).encode(),
                             value=json.dumps(doc).encode())
        assert producer.flush(10) == 0

        def sent() -> dict[str, str]:
            with bridge.ledger.engine.connect() as conn:
                return {f"{c}:{k}": ch for c, k, ch in conn.execute(
                    select(notifications.c.dossier_code, notifications.c.kind,
                           notifications.c.channel).where(notifications.c.status == "sent"))}
        got = wait_for(lambda: (lambda s: s if len(s) == 3 else None)(sent()), 60,
                       message="three notices sent")
        assert got == {f"{CODE}:RECEIVED": "zalo_oa", f"{CODE}:RESULT_RETURNED": "zalo_oa",
                       "000.00.23.H39-240612-0002:RECEIVED": "zns"}
        with bridge.ledger.engine.connect() as conn:
            prices = set(conn.execute(select(notifications.c.price_vnd)
                                      .where(notifications.c.channel == "zalo_oa")).scalars())
        assert prices == {0}

        def prompt() -> bool:
            texts = [json.dumps(m, ensure_ascii=False)
                     for m in sb.get("/sandbox/messages", params={"user_id": "e2e-1"}).json()]
            return any(f"#danh-gia {CODE} 5" in t for t in texts)
        wait_for(prompt, 20, message="rating prompt after RESULT_RETURNED was delivered")
    finally:
        stop.set()
        runner.join(30)
        bridge.close()
        sb.close()
        sandbox.stop()
