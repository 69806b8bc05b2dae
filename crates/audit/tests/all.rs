//! Integration tests of the audit log, on SQLite and PostgreSQL.

mod suite;
