-- Least-privilege roles and the publication for onestop-bridge (docs/runbook.md,
-- "Database roles and least privilege"). Run once by a database administrator, in the
-- one-stop database, after the dossier table exists:
--
--   psql -v ON_ERROR_STOP=1 -d onestop \
--        -v capture_password="$CAPTURE_PW" -v lookup_password="$LOOKUP_PW" \
--        -f deploy/postgres/least-privilege.sql
--
-- Optional psql variables: tables (default public.dossiers), publication (default
-- onestop_bridge, = [source] publication), heartbeat_table (a table the built-in connector
-- may write heartbeats to), signal_table (Debezium's signal table, for incremental
-- snapshots on request; the administrator writes the signals, the connector only reads them
-- from the stream), slot_takeover (any value: GRANT pg_read_all_stats, so the
-- built-in connector can see when the walsender holding its slot last heard from its client
-- and take over a slot left by a dead connection; without it, it waits for the server's
-- wal_sender_timeout). Passwords are optional (certificate or peer authentication).
-- The script is idempotent: re-running it only re-applies grants and passwords.

\set ON_ERROR_STOP on
\if :{?tables}
\else
  \set tables public.dossiers
\endif
\if :{?publication}
\else
  \set publication onestop_bridge
\endif

-- The connector (built-in `onestop-bridge capture` or Debezium): a replication login that
-- can SELECT the captured tables (initial snapshot) and write nothing. It neither creates nor
-- alters the publication: ALTER PUBLICATION needs ownership of the publication and tables.
-- REPLICATION itself goes further than any grant: the role may create a slot with another
-- output plugin (test_decoding) and decode every table's changes in this database, whatever
-- its SELECT grants say. PostgreSQL has no finer control; limit where the role may log in
-- from (pg_hba.conf) and watch pg_replication_slots (docs/runbook.md).
SELECT 'CREATE ROLE onestop_capture WITH LOGIN REPLICATION'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'onestop_capture') \gexec
ALTER ROLE onestop_capture WITH LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE;
\if :{?capture_password}
  ALTER ROLE onestop_capture WITH PASSWORD :'capture_password';
\endif

-- The bridge's dossier lookup for citizens (webhook): read-only, only the columns a citizen
-- is shown or matched on. default_transaction_read_only guards against a code mistake.
SELECT 'CREATE ROLE onestop_lookup WITH LOGIN'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'onestop_lookup') \gexec
ALTER ROLE onestop_lookup WITH LOGIN NOREPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE;
ALTER ROLE onestop_lookup SET default_transaction_read_only = on;
\if :{?lookup_password}
  ALTER ROLE onestop_lookup WITH PASSWORD :'lookup_password';
\endif

SELECT format('GRANT CONNECT ON DATABASE %I TO onestop_capture, onestop_lookup',
              current_database()) \gexec
-- Table names must be schema-qualified (schema.table).
SELECT DISTINCT format('GRANT USAGE ON SCHEMA %I TO onestop_capture',
                       split_part(trim(name), '.', 1))
  FROM unnest(string_to_array(:'tables', ',')) AS t(name) \gexec
-- The lookup role reads only public.dossiers: no other captured schema.
SELECT 'GRANT USAGE ON SCHEMA public TO onestop_lookup'
 WHERE 'public.dossiers' IN (SELECT trim(name) FROM unnest(string_to_array(:'tables', ',')) AS t(name)) \gexec
SELECT format('GRANT SELECT ON %s TO onestop_capture', trim(name))
  FROM unnest(string_to_array(:'tables', ',')) AS t(name) \gexec
SELECT format('GRANT SELECT (code, procedure_name, agency_name, applicant_phone, status, '
              'received_at, due_at, finished_at, fee_amount, note) ON %s TO onestop_lookup',
              trim(name))
  FROM unnest(string_to_array(:'tables', ',')) AS t(name)
 WHERE trim(name) = 'public.dossiers' \gexec

-- The publication, pre-created here by the administrator and filtered to the captured
-- tables (never FOR ALL TABLES). Debezium uses it with publication.autocreate.mode=disabled.
SELECT format('CREATE PUBLICATION %I FOR TABLE %s', :'publication', :'tables')
 WHERE NOT EXISTS (SELECT FROM pg_publication WHERE pubname = :'publication') \gexec

\if :{?slot_takeover}
GRANT pg_read_all_stats TO onestop_capture;
\endif

-- Optional heartbeat table for the built-in connector ([source] heartbeat_table): writes to
-- it keep the slot's confirmed LSN moving while the dossier table is quiet. Debezium does
-- not need it (its heartbeat.action.query emits a logical decoding message instead).
\if :{?heartbeat_table}
SELECT format('CREATE TABLE IF NOT EXISTS %s (id int PRIMARY KEY, ts timestamptz NOT NULL)',
              :'heartbeat_table') \gexec
SELECT format('GRANT SELECT, INSERT, UPDATE ON %s TO onestop_capture', :'heartbeat_table') \gexec
SELECT format('ALTER PUBLICATION %I ADD TABLE %s', :'publication', :'heartbeat_table')
 WHERE NOT EXISTS (  -- by the table itself: "onestop_x" and "public.onestop_x" are one table
   SELECT FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid
    WHERE p.pubname = :'publication' AND r.prrelid = to_regclass(:'heartbeat_table')) \gexec
\endif

-- Optional signal table ([source] signal_table, Debezium's signal.data.collection): a row
-- inserted here asks the connector for an incremental snapshot (docs/connectors.md). It is
-- read from the stream, so the capture role needs no grant on it; whoever sends signals
-- needs INSERT.
\if :{?signal_table}
SELECT format('CREATE TABLE IF NOT EXISTS %s (id varchar(42) PRIMARY KEY, '
              'type varchar(32) NOT NULL, data varchar(2048))', :'signal_table') \gexec
SELECT format('ALTER PUBLICATION %I ADD TABLE %s', :'publication', :'signal_table')
 WHERE NOT EXISTS (  -- by the table itself: "onestop_x" and "public.onestop_x" are one table
   SELECT FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid
    WHERE p.pubname = :'publication' AND r.prrelid = to_regclass(:'signal_table')) \gexec
\endif
