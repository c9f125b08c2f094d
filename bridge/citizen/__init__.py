"""The citizen's side of the Official Account (the pilot's "Thông tin", "Dịch vụ công",
"Hỗ trợ" menus and the "Tuyên truyền"/"Tương tác" channels it proposed).

- `service.Citizen` — assembles everything; `install(app)` adds ``POST /webhook/zalo``.
- `webhook` (verify, store, answer) → `inbox` (ledger, dedupe) → `processor` (workers,
  per-citizen order) → `followers`, `chat`, `lookup`, `receipts` (what to answer) →
  `replies` (through the dispatcher's `send_oa_message`).
- `dossiers` (read-only one-stop DB or ledger state), `procedures` (catalogue search),
  `wording` and `messages` (Vietnamese text, Zalo limits), `text` (codes, commands).
- CLIs: `qr` (receipt QR code), `feedback_cli` (CSV export), `broadcast` (news/emergency).

See README.md in this folder for the endpoints, commands and the URL printed as QR code.
"""

from __future__ import annotations
