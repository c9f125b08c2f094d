-- Reference one-stop-shop schema (design.md §3): used by the tests, the demo and the
-- default configuration. Real vendors' column names and status values are mapped by
-- configuration ([source.columns], [source.status_map]).

CREATE TABLE IF NOT EXISTS dossiers (
  id              BIGSERIAL PRIMARY KEY,
  code            TEXT NOT NULL UNIQUE,   -- mã hồ sơ, e.g. 000.00.23.H39-240612-0001
  procedure_code  TEXT NOT NULL,          -- mã TTHC, e.g. 1.001234
  procedure_name  TEXT NOT NULL,
  agency_name     TEXT NOT NULL,          -- where the result is collected
  applicant_name  TEXT NOT NULL,
  applicant_phone TEXT,                   -- as typed at the desk: 0909…, +84 909…, 84909…
  status          SMALLINT NOT NULL,      -- national portal status code, 1..10
  received_at     TIMESTAMPTZ,
  due_at          TIMESTAMPTZ,            -- ngày hẹn trả kết quả
  finished_at     TIMESTAMPTZ,
  fee_amount      NUMERIC(14,2),          -- fees/charges due (status 6)
  note            TEXT,                   -- reason: documents to add, refusal or delay reason
  updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS dossiers_updated_at_id ON dossiers (updated_at, id);
CREATE INDEX IF NOT EXISTS dossiers_applicant_phone ON dossiers (applicant_phone);

-- Least-privilege roles (run as an administrator; see docs/runbook.md):
--   CREATE ROLE onestop_capture WITH LOGIN REPLICATION PASSWORD '…';
--   GRANT SELECT ON dossiers TO onestop_capture;
--   CREATE PUBLICATION onestop_bridge FOR TABLE dossiers;   -- pre-created by the admin
--   CREATE ROLE onestop_lookup WITH LOGIN PASSWORD '…';
--   GRANT SELECT (code, procedure_name, agency_name, applicant_phone, status, received_at,
--                 due_at, finished_at, fee_amount, note) ON dossiers TO onestop_lookup;
