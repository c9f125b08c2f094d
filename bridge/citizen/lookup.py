"""Dossier lookup by code, with a second factor for citizens not linked to the dossier.

- The asking Zalo user is linked to the dossier's phone → full details at once.
- Otherwise → ask for the last four digits of the applicant's phone; the right digits
  unlock the details (for 24 h for that user and dossier); wrong digits and unknown codes
  count as failures, and `oa.lookup_max_attempts` failures within `oa.lookup_lock_s` lock
  the user's lookups until the window has passed.
Only "found, please verify" is said before the second factor: never a name, a status or
a date.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from bridge import metrics
from bridge.citizen import messages, wording
from bridge.citizen.dossiers import DossierSource
from bridge.citizen.messages import Message
from bridge.citizen.replies import Replier
from bridge.citizen.store import CitizenStore
from bridge.citizen.text import MAX_CODES_PER_MESSAGE
from bridge.model import Dossier
from bridge.phone import normalise_phone
from bridge.settings import Settings
from bridge.templates import Renderer

log = logging.getLogger(__name__)
CHALLENGE_TTL_S = 15 * 60
GRANT_TTL_S = 24 * 3600


def next_step(d: Dossier, ctx: dict[str, str], now: datetime) -> str:
    """Where the dossier stands and what the citizen should do now, by national status code.

    The appointment date only where a result is still to come: a refused, withdrawn or
    stopped dossier has none, and a supplement request restarts the count.
    """
    place, reason, due = ctx.get("noi_tra", ""), ctx.get("ly_do", ""), ctx.get("ngay_hen_tra", "")
    status = d.status if isinstance(d.status, int) else 0
    if status in (2, 4):
        if isinstance(d.due_at, datetime) and d.due_at < now:
            return (f"Hồ sơ đã quá ngày hẹn trả kết quả ({due}). Cơ quan giải quyết sẽ thông báo "
                    f"ngày hẹn mới; Ông/Bà có thể liên hệ {place} để biết thêm.")
        appointment = f"Ngày hẹn trả kết quả: {due}, tại {place}. " \
            if isinstance(d.due_at, datetime) else ""
        return (appointment + "Hồ sơ đang được giải quyết, Ông/Bà chưa cần làm gì thêm; khi có "
                "kết quả Ông/Bà sẽ nhận được thông báo.")
    steps = {
        1: "Bộ phận Một cửa đang kiểm tra hồ sơ nộp trực tuyến; Ông/Bà sẽ nhận thông báo khi "
           "hồ sơ được tiếp nhận.",
        3: f"Lý do: {reason}. Ông/Bà vui lòng liên hệ {place} để được giải thích và hướng dẫn.",
        5: f"Nội dung cần bổ sung: {reason}. Ông/Bà vui lòng nộp bổ sung tại {place} hoặc trên "
           "Cổng Dịch vụ công; thời hạn giải quyết được tính lại kể từ ngày nhận đủ hồ sơ hợp lệ.",
        6: f"Ngày hẹn trả kết quả: {due}. Ông/Bà vui lòng nộp {ctx.get('so_tien', '')} tại "
           f"{place} hoặc thanh toán trực tuyến trên Cổng Dịch vụ công.",
        7: "Hồ sơ đã được rút theo đề nghị; khi có nhu cầu, Ông/Bà có thể nộp hồ sơ mới.",
        8: f"Lý do: {reason}. Ông/Bà vui lòng liên hệ {place} để được hướng dẫn.",
        9: f"Mời Ông/Bà đến nhận kết quả tại {place}, mang theo Giấy tiếp nhận hồ sơ và hẹn "
           "trả kết quả và giấy tờ tùy thân; người nhận thay mang theo giấy ủy quyền.",
        10: "Hồ sơ đã hoàn thành và trả kết quả. Cảm ơn Ông/Bà đã sử dụng dịch vụ công.",
    }
    return steps.get(status, f"Ông/Bà vui lòng liên hệ {place} để biết thêm.")


def summary(renderer: Renderer, d: Dossier, now: datetime) -> str:
    """STATUS_SUMMARY wording of the template set (code, procedure, status), then where the
    dossier stands and what to do."""
    text, _ = renderer.render("STATUS_SUMMARY", d)
    ctx = renderer.context(d, None, ("noi_tra", "ly_do", "so_tien", "ngay_hen_tra"))
    return text + "\n" + next_step(d, ctx, now)


class Lookup:
    def __init__(self, settings: Settings, store: CitizenStore, dossiers: DossierSource,
                 replier: Replier, renderer: Renderer) -> None:
        self.settings = settings
        self.store = store
        self.dossiers = dossiers
        self.replier = replier
        self.renderer = renderer
        self.zone = ZoneInfo(settings.source.timezone)

    # --- entry points --------------------------------------------------------------------
    def codes(self, user_id: str, codes: list[str]) -> None:
        if len(codes) > MAX_CODES_PER_MESSAGE:
            self._say(user_id, wording.too_many_codes(MAX_CODES_PER_MESSAGE), "lookup")
            codes = codes[:MAX_CODES_PER_MESSAGE]
        found = self.dossiers.by_codes(codes)
        mine = self.store.linked_phone(user_id)
        granted = self.store.granted(user_id, codes, GRANT_TTL_S)
        locked = self._locked(user_id)
        to_verify: list[str] = []
        refused = False
        for code in codes:
            d = found.get(code)
            if d is not None and mine is not None and normalise_phone(d.applicant_phone) == mine:
                self._details(user_id, d, "linked")  # their own dossier: never locked out
            elif d is not None and code in granted:
                self._details(user_id, d, "granted")
            elif locked:
                refused = True
            elif d is None:
                metrics.lookups.labels(result="not_found").inc()
                self.store.add_failure(user_id, "not_found")  # slows down code guessing
                self._say(user_id, wording.not_found(code), "lookup")
            elif normalise_phone(d.applicant_phone) is None:
                metrics.lookups.labels(result="no_phone").inc()
                self._say(user_id, wording.no_phone(code, wording.hotline(self.settings)), "lookup")
            else:
                to_verify.append(code)
        if refused:
            self._refuse(user_id)
        elif to_verify:
            self.store.set_challenge(user_id, to_verify)
            metrics.lookups.labels(result="challenged").inc()
            self._say(user_id, wording.challenge(to_verify), "lookup_challenge")

    def answer(self, user_id: str, digits: str) -> bool:
        """Handle four digits; False when no challenge is pending (not a lookup answer)."""
        pending = self.store.challenge(user_id, CHALLENGE_TTL_S)
        if pending is None and not self._locked(user_id):
            return False
        if pending is None or self._locked(user_id):
            self._refuse(user_id)
            return True
        found = self.dossiers.by_codes(pending.codes)
        unlocked = [d for code in pending.codes if (d := found.get(code)) is not None
                    and (phone := normalise_phone(d.applicant_phone)) is not None and phone.endswith(digits)]
        if not unlocked:
            metrics.lookups.labels(result="wrong_factor").inc()
            self.store.add_failure(user_id, "wrong_factor")
            if self._locked(user_id):
                self.store.clear_challenge(user_id)
                self._refuse(user_id)
            else:
                left = self.settings.oa.lookup_max_attempts - self._failures(user_id)[0]
                self._say(user_id, wording.wrong_factor(left), "lookup_challenge")
            return True
        self.store.clear_challenge(user_id)
        self.store.grant(user_id, [d.code for d in unlocked])
        for d in unlocked:
            self._details(user_id, d, "unlocked")
        return True

    def confirm_open(self, user_id: str, dossiers: list[Dossier],
                     result: str = "linked_retroactive") -> None:
        """Retroactive confirmation after a phone was linked (the user owns these)."""
        for d in dossiers:
            self._details(user_id, d, result)

    def own(self, user_id: str) -> bool:
        """"Tra cứu hồ sơ" from a linked citizen: their open dossiers, no code to type.
        False when there is nothing to show (not linked, or nothing open)."""
        phone = self.store.linked_phone(user_id)
        dossiers = self.dossiers.open_for_phone(phone)[:10] if phone else []
        if not dossiers:
            return False
        self._say(user_id, wording.own_dossiers(len(dossiers)), "lookup_own")
        self.confirm_open(user_id, dossiers, "linked")
        return True

    # --- internals -------------------------------------------------------------------------
    def _details(self, user_id: str, d: Dossier, result: str) -> None:
        metrics.lookups.labels(result=result).inc()
        self.store.set_context(user_id, d.code)
        self._say(user_id, summary(self.renderer, d, datetime.now(timezone.utc)), "lookup_details")

    def _failures(self, user_id: str) -> tuple[int, int | None]:
        return self.store.failures_since(user_id, self.settings.oa.lookup_lock_s)

    def _locked(self, user_id: str) -> bool:
        return self._failures(user_id)[0] >= self.settings.oa.lookup_max_attempts

    def _refuse(self, user_id: str) -> None:
        metrics.lookups.labels(result="refused").inc()
        _, oldest = self._failures(user_id)
        until_ms = (oldest or self.store.now_ms()) + int(self.settings.oa.lookup_lock_s * 1000)
        until = datetime.fromtimestamp(until_ms / 1000, timezone.utc).astimezone(self.zone)
        hhmm = f"{until:%H:%M} ngày {until:%d/%m/%Y}"
        self._say(user_id, wording.locked(self.settings.oa.lookup_max_attempts, hhmm,
                                          wording.hotline(self.settings)), "lookup_refused")

    def _say(self, user_id: str, body: str, purpose: str) -> None:
        message: Message = messages.text(body)
        self.replier.reply(user_id, message, purpose)
