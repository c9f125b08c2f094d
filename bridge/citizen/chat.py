"""A citizen's text message → the right answer.

Order: a rating button's hidden payload; four digits answering a pending lookup
question; six digits typing back a link code; a keyword command (accent-insensitive);
dossier codes anywhere in the text; part of a code (what a whole one looks like);
otherwise the help text with the menus. User text is matched, stored as data, never
formatted or executed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from bridge import metrics
from bridge.citizen import messages, wording
from bridge.citizen.lookup import Lookup
from bridge.citizen.messages import query_button, url_button
from bridge.citizen.procedures import Catalogue, Procedure
from bridge.citizen.replies import Replier
from bridge.citizen.store import TOPICS, CitizenStore
from bridge.citizen.text import (
    RATING_PREFIX, Command, find_codes, is_courtesy, link_code, looks_like_a_code, parse_command,
    second_factor,
)
from bridge.settings import Settings

log = logging.getLogger(__name__)
_ABOUT_A_DOSSIER = frozenset({"procedure", "support"})  # commands a dossier code outranks
FEEDBACK_MAX = 2000


def procedure_text(p: Procedure) -> str:
    lines = [p.name, f"Mã thủ tục: {p.code}", f"Lĩnh vực: {p.field}",
             f"Thời hạn giải quyết: {p.time_limit}", f"Phí, lệ phí: {p.fee}",
             "Hồ sơ gồm:"]
    lines += [f"• {doc}" for doc in p.documents]
    lines.append(f"Nơi nộp: {p.where}")
    return "\n".join(lines)


def rating_buttons(code: str) -> list[messages.Button]:
    return [query_button(f"{score} – {wording.SCORE_LABEL[score]}",
                         f"{RATING_PREFIX} {code} {score}", hidden=True)
            for score in (5, 4, 3, 2, 1)]


class Chat:
    def __init__(self, settings: Settings, store: CitizenStore, lookup: Lookup,
                 catalogue: Catalogue, replier: Replier,
                 link_answer: Callable[[str, str], bool] = lambda _user, _code: False) -> None:
        self.settings = settings
        self.link_answer = link_answer  # True when six digits were a pending link code
        self.store = store
        self.lookup = lookup
        self.catalogue = catalogue
        self.replier = replier

    def handle(self, user_id: str, text: str) -> None:
        command = parse_command(text)
        if command is not None and command.name == "rating":
            return self.rating(user_id, command)
        digits = second_factor(text)
        if digits is not None and self.lookup.answer(user_id, digits):
            return None
        code = link_code(text)
        if code is not None and self.link_answer(user_id, code):
            return None
        codes = find_codes(text)
        # "Thủ tục của hồ sơ <code> đến đâu rồi?", "hỗ trợ giúp tôi hồ sơ <code>": a question
        # about that dossier, whatever word comes first. Feedback may name a dossier too.
        if command is not None and command.name != "lookup_help" \
                and not (codes and command.name in _ABOUT_A_DOSSIER):
            return self.command(user_id, command)
        if codes:
            return self.lookup.codes(user_id, codes)
        if looks_like_a_code(text):  # "tra cứu hồ sơ 240612-0001" too
            return self._say(user_id, messages.text(wording.PARTIAL_CODE), "partial_code")
        if command is not None:  # "tra cứu hồ sơ" without a code
            if self.lookup.own(user_id):
                return None
            return self._say(user_id, messages.text(wording.LOOKUP_HELP), "lookup_help")
        if is_courtesy(text):
            return self.acknowledge(user_id)
        return self.help(user_id)

    def command(self, user_id: str, command: Command) -> None:
        name = command.name
        if name == "procedure":
            self.procedures(user_id, command.arg)
        elif name == "support":
            body, buttons = wording.support(self.settings.oa.centres)
            self._say(user_id, messages.with_buttons(body, buttons), "support")
        elif name == "feedback":
            self.feedback(user_id, command.arg)
        elif name.startswith("subscribe:"):
            topic = name.split(":", 1)[1]
            self.store.subscribe(user_id, topic)
            self._say(user_id, messages.text(wording.subscribed(topic)), "subscription")
        elif name.startswith("unsubscribe:"):
            which = name.split(":", 1)[1]
            topics = TOPICS if which == "all" else (which,)
            self.store.unsubscribe(user_id, topics)
            self._say(user_id, messages.text(wording.unsubscribed(list(topics))), "subscription")
        else:
            self.help(user_id)

    def acknowledge(self, user_id: str) -> None:
        self._say(user_id, messages.text(wording.ACKNOWLEDGED), "acknowledged")

    def help(self, user_id: str) -> None:
        body = messages.with_buttons(wording.HELP, wording.menu_buttons(self.settings))
        self._say(user_id, body, "help")

    def procedures(self, user_id: str, query: str) -> None:
        if not query.strip():
            return self._say(user_id, messages.text(wording.PROCEDURE_HELP), "procedure_help")
        portal = self.settings.oa.province_portal_url
        found = self.catalogue.search(query)
        if not found:
            body = messages.with_buttons(wording.PROCEDURE_NONE,
                                         [url_button("Cổng Dịch vụ công của tỉnh", portal)])
            return self._say(user_id, body, "procedure_none")
        best, others = found[0], found[1:]
        buttons = [url_button("Xem trên Cổng Dịch vụ công", best.link(portal))]
        buttons += [query_button(messages.clip(p.name, messages.BUTTON_TITLE_MAX),
                                 f"thủ tục {p.code}") for p in others]
        self._say(user_id, messages.with_buttons(procedure_text(best), buttons), "procedure")
        return None

    def feedback(self, user_id: str, body: str) -> None:
        body = body.strip()
        if not body:
            return self._say(user_id, messages.text(wording.FEEDBACK_EMPTY), "feedback_help")
        codes = find_codes(body)
        code = codes[0] if codes else self.store.context(user_id)
        self.store.record_feedback(user_id, code, body[:FEEDBACK_MAX])
        metrics.feedback.inc()
        thanks = wording.feedback_thanks(code)
        if len(body) > FEEDBACK_MAX:
            thanks += " " + wording.feedback_cut(FEEDBACK_MAX)
        self._say(user_id, messages.text(thanks), "feedback")
        return None

    def rating(self, user_id: str, command: Command) -> None:
        code, score_text = command.arg.rsplit(" ", 1)
        score = int(score_text)
        if not self.store.prompt_sent(code, user_id):
            return self._say(user_id, messages.text(wording.RATING_UNKNOWN), "rating_unknown")
        self.store.record_rating(code, user_id, score)
        self.store.set_context(user_id, code)
        metrics.ratings.labels(score=str(score)).inc()
        self._say(user_id, messages.text(wording.rating_thanks(code, score)), "rating")
        return None

    def _say(self, user_id: str, message: messages.Message, purpose: str) -> None:
        self.replier.reply(user_id, message, purpose)
