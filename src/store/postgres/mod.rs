//! [`PgStore`]: PostgreSQL, for several replicas.

pub(crate) mod error;
