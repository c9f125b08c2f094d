"""OAuth host (oauth.zaloapp.com): ``POST /v4/oa/access_token`` with a refresh token.

Form-encoded body ``grant_type=refresh_token&refresh_token=…&app_id=…`` and header
``secret_key: <app secret>``.  Success is the bare object (no envelope) with
``expires_in`` as a string; errors carry ``error``, ``error_name``, ``error_reason``, ``ref_doc``.
"""

from __future__ import annotations

from aiohttp import web

from bridge.sandbox.codes import (
    OAUTH_INVALID_APP_ID,
    OAUTH_INVALID_PARAM,
    OAUTH_INVALID_REFRESH,
    OAUTH_INVALID_SECRET,
)
from bridge.sandbox.common import STATE, json_response, latency
from bridge.sandbox.state import SandboxState

REF_DOC = "https://developers.zalo.me/docs/official-account/bat-dau/xac-thuc-va-uy-quyen-cho-ung-dung-new"


def _error(pair: tuple[int, str], reason: str) -> web.Response:
    code, name = pair
    return json_response({"error": code, "error_name": name, "error_reason": reason, "ref_doc": REF_DOC,
                          "error_description": reason})


async def access_token(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    await latency(state)
    state.requests_per_path["/v4/oa/access_token"] += 1
    form = await request.post()
    answer = _check(state, form.get("app_id"), request.headers.get("secret_key"), form.get("grant_type"))
    if answer is not None:
        return answer
    refresh = form.get("refresh_token")
    grant = state.tokens.refresh(refresh) if isinstance(refresh, str) else None
    if grant is None:
        state.count_error(OAUTH_INVALID_REFRESH[0])
        used = isinstance(refresh, str) and state.tokens.was_used(refresh)
        return _error(OAUTH_INVALID_REFRESH, "refresh token was already used" if used else "refresh token is invalid")
    return json_response({"access_token": grant.access_token, "refresh_token": grant.refresh_token,
                          "expires_in": str(grant.expires_in)})


def _check(state: SandboxState, app_id: object, secret: str | None, grant_type: object) -> web.Response | None:
    sc = state.scenario
    if app_id != sc.app_id:
        state.count_error(OAUTH_INVALID_APP_ID[0])
        return _error(OAUTH_INVALID_APP_ID, "app_id is missing or unknown")
    if secret != sc.app_secret:
        state.count_error(OAUTH_INVALID_SECRET[0])
        return _error(OAUTH_INVALID_SECRET, "secret_key header is missing or wrong")
    if grant_type != "refresh_token":
        state.count_error(OAUTH_INVALID_PARAM[0])
        return _error(OAUTH_INVALID_PARAM, "only grant_type=refresh_token is imitated")
    return None
