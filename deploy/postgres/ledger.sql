-- The delivery ledger's database and its owner ([ledger] url, e.g.
-- postgresql+psycopg2://onestop_ledger:…@db/onestop_ledger). The ledger is the bridge's own
-- state (idempotency keys, last-known dossier state), so it lives apart from the one-stop
-- database; the bridge creates its tables as the owner. Run as an administrator:
--
--   psql -v ON_ERROR_STOP=1 -v ledger_password="$LEDGER_PW" -f deploy/postgres/ledger.sql

\set ON_ERROR_STOP on
SELECT 'CREATE ROLE onestop_ledger WITH LOGIN'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'onestop_ledger') \gexec
ALTER ROLE onestop_ledger WITH LOGIN NOREPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE;
\if :{?ledger_password}
  ALTER ROLE onestop_ledger WITH PASSWORD :'ledger_password';
\endif
SELECT 'CREATE DATABASE onestop_ledger OWNER onestop_ledger'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'onestop_ledger') \gexec
-- It holds the OA's tokens and citizens' phone numbers: PUBLIC's default CONNECT and TEMP
-- would let every other role (the capture and lookup logins included) in. The owner keeps both.
REVOKE ALL ON DATABASE onestop_ledger FROM PUBLIC;
