"""OAuth refresh rotation and access-token validity, as the bridge's token manager sees them."""

from __future__ import annotations

from typing import Any

import httpx


def refresh(http: httpx.Client, token: str, *, secret: str = "sandbox-secret", app_id: str = "sandbox-app") -> Any:
    reply = http.post(
        "/v4/oa/access_token",
        data={"grant_type": "refresh_token", "refresh_token": token, "app_id": app_id},
        headers={"secret_key": secret},
    )
    assert reply.status_code == 200
    return reply.json()


def test_refresh_returns_tokens_with_string_expiry(make_sandbox):
    box = make_sandbox(token=False)
    reply = refresh(box.http, "sandbox-refresh-0")
    assert set(reply) == {"access_token", "refresh_token", "expires_in"}
    assert reply["expires_in"] == "90000"
    assert reply["refresh_token"] != "sandbox-refresh-0"
    assert box.http.get("/sandbox/refresh-token").json()["refresh_token"] == reply["refresh_token"]
    assert box.http.get("/sandbox/stats").json()["tokens_issued"] == 1


def test_refresh_tokens_are_single_use_and_rotate(make_sandbox):
    box = make_sandbox(token=False)
    first = refresh(box.http, "sandbox-refresh-0")
    reused = refresh(box.http, "sandbox-refresh-0")
    assert reused["error"] == -14014 and reused["error_name"] == "Invalid refresh token"
    assert "access_token" not in reused
    second = refresh(box.http, first["refresh_token"])
    assert "access_token" in second
    assert refresh(box.http, first["refresh_token"])["error"] == -14014
    assert refresh(box.http, "never-issued")["error"] == -14014


def test_wrong_secret_or_app_id_is_a_14xxx_error(make_sandbox):
    box = make_sandbox(token=False)
    assert refresh(box.http, "sandbox-refresh-0", secret="wrong")["error"] == -14004
    assert refresh(box.http, "sandbox-refresh-0", app_id="other-app")["error"] == -14002
    # A rejected attempt does not burn the refresh token.
    assert "access_token" in refresh(box.http, "sandbox-refresh-0")


def test_configured_refresh_token_and_app_id(make_sandbox):
    box = make_sandbox({"refresh_token": "rt-prod-like", "app_secret": "s3"}, token=False, app_id="4127841001935001267")
    assert refresh(box.http, "sandbox-refresh-0", secret="s3", app_id="4127841001935001267")["error"] == -14014
    assert "access_token" in refresh(box.http, "rt-prod-like", secret="s3", app_id="4127841001935001267")


def test_missing_unknown_and_expired_access_tokens(make_sandbox):
    box = make_sandbox({"followers": {"u1": {}}})
    assert box.cs("u1")["error"] == 0
    good = box.token
    box.token = "forged"
    assert box.cs("u1")["error"] == -216
    assert box.zns("84911000001")["error"] == -124
    missing = box.http.post("/v3.0/oa/message/cs", json={"recipient": {"user_id": "u1"}, "message": {"text": "x"}})
    assert missing.json() == {"error": -216, "message": "Access token is invalid"}
    box.token = good
    assert box.http.post("/sandbox/expire-tokens").json()["expired"] == 1
    assert box.cs("u1")["error"] == -220
    assert box.zns("84911000001")["error"] == -220
    assert box.call("GET", "/v3.0/oa/user/detail", params={"data": '{"user_id":"u1"}'}).json()["error"] == -220
    box.new_token()
    assert box.cs("u1")["error"] == 0


def test_access_token_expires_after_ttl(make_sandbox, clock):
    box = make_sandbox({"followers": {"u1": {}}, "token_ttl_s": 3600}, clock=clock)
    assert box.cs("u1")["error"] == 0
    clock.advance(3599)
    assert box.cs("u1")["error"] == 0
    clock.advance(2)
    assert box.cs("u1")["error"] == -220
