//! Throwaway PostgreSQL databases for tests and benchmarks.
//!
//! Each [`ScratchDatabase`] is a new database with a unique name on the
//! server that `TOOLSHED_TEST_POSTGRES` names (default
//! [`DEFAULT_SERVER`]), dropped again when the value is dropped, so tests
//! running at once never share state and leave nothing behind.

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// The server tests use unless `TOOLSHED_TEST_POSTGRES` names another: the
/// local one, with trust authentication.
pub const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The URL of the server's maintenance database tests create theirs from.
pub fn server_url() -> String {
    std::env::var("TOOLSHED_TEST_POSTGRES").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| DEFAULT_SERVER.to_string())
}

/// A database of its own, dropped on drop.
pub struct ScratchDatabase {
    server: String,
    name: String,
    url: String,
}

impl ScratchDatabase {
    /// Creates a new, empty database on the test server.
    ///
    /// # Errors
    ///
    /// When the server cannot be reached or refuses to create it; the
    /// message says which server and how to name another.
    pub async fn create() -> anyhow::Result<ScratchDatabase> {
        let server = server_url();
        let name = format!("toolshed_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&server).await.map_err(|e| {
            anyhow::anyhow!("cannot reach the test PostgreSQL server at {server}: {e}; start it, or set TOOLSHED_TEST_POSTGRES to another server's URL")
        })?;
        // The name is ours: a fixed prefix and a UUID's hex digits.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await?;
        let _ = admin.close().await;
        let url = with_database(&server, &name);
        Ok(ScratchDatabase { server, name, url })
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Dropped from sync code or from inside a runtime alike: a thread of
        // its own with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async move {
                let mut admin = PgConnection::connect(&server).await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).execute(&mut admin).await?;
                anyhow::Ok(())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("warning: could not drop test database {}: {e}", self.name);
        }
    }
}

/// `server` with its database part replaced by `database`.
fn with_database(server: &str, database: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (server, None),
    };
    let authority_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_part_of_a_url_is_replaced_and_the_rest_kept() {
        assert_eq!(with_database("postgres://u@h:5432/postgres", "t1"), "postgres://u@h:5432/t1");
        assert_eq!(with_database("postgres://u@h:5432", "t1"), "postgres://u@h:5432/t1");
        assert_eq!(with_database("postgres://u:p@h/db?sslmode=disable", "t1"), "postgres://u:p@h/t1?sslmode=disable");
    }
}
