#!/bin/sh
# Runs once, when the postgres container initialises an empty data directory (mounted as
# /docker-entrypoint-initdb.d/10-onestop.sh, after 01-reference.sql created the dossier
# table). Applies the same SQL an administrator runs on a real one-stop database.
set -eu

psql -v ON_ERROR_STOP=1 -X --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v capture_password="$CAPTURE_DB_PASSWORD" \
     -v lookup_password="$LOOKUP_DB_PASSWORD" \
     -f /onestop-sql/least-privilege.sql

psql -v ON_ERROR_STOP=1 -X --username "$POSTGRES_USER" --dbname postgres \
     -v ledger_password="$LEDGER_DB_PASSWORD" \
     -f /onestop-sql/ledger.sql
