//! The local backend's state: chats, templates, workspaces, builds and their
//! jobs, agents, settings and registry tasks.
//!
//! One SQL dialect over two engines through sqlx: SQLite (a file in the
//! data directory, the embedded default) and PostgreSQL (shared by several
//! hosts). Every query runs off the async workers (sqlx gives each SQLite
//! connection a thread of its own), errors are typed, and a busy or locked
//! database is retried with backoff instead of stalling a caller. Reads
//! never write.

mod agents;
mod builds;
mod chats;
mod migrations;
mod rows;
mod settings;
mod tasks;
mod templates;
mod workspaces;

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Transaction};
use toolshed_runtime::quota::{QuotaExceeded, Quotas};

pub use agents::NewAgent;
pub use builds::{ExpiredJob, NewBuild, ORPHANED};
pub use chats::Binding;
pub use rows::{AgentRecord, BuildRecord, JobLease, WorkspaceRecord, lifecycle_name, status_name, transition_name};
pub use settings::RegistryTaskRecord;
pub use templates::{NewVersion, PushedVersion, VersionRecord};
pub use workspaces::NewWorkspace;

/// The engine behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database stayed busy or locked through every retry.
    #[error("the database stayed busy through {attempts} attempts")]
    Busy {
        /// How many times the operation was tried.
        attempts: u32,
    },
    /// A row that must be unique already exists.
    #[error("{0}")]
    Conflict(String),
    /// A stored value could not be read back.
    #[error("a stored {what} is malformed: {detail}")]
    Malformed {
        /// What was read.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// The database answered with an error.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The write would take the owner past a quota.
    #[error("{0}")]
    Quota(QuotaExceeded),
}

impl StoreError {
    /// Whether trying again may succeed: SQLite busy or locked, a
    /// PostgreSQL serialization failure or deadlock.
    fn is_transient(&self) -> bool {
        let StoreError::Database(sqlx::Error::Database(e)) = self else { return false };
        matches!(e.code().as_deref(), Some("5" | "6" | "261" | "262" | "517" | "40001" | "40P01"))
            || e.message().contains("database is locked")
            || e.message().contains("database is busy")
    }

    /// Whether a unique constraint refused the write.
    fn is_unique_violation(&self) -> bool {
        let StoreError::Database(sqlx::Error::Database(e)) = self else { return false };
        e.kind() == sqlx::error::ErrorKind::UniqueViolation
    }
}

/// The file a `sqlite://PATH?OPTIONS` URL names, unless it names memory.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, options) = rest.split_once('?').unwrap_or((rest, ""));
    let memory = path.is_empty() || path == ":memory:" || options.split('&').any(|o| o == "mode=memory");
    (!memory).then(|| std::path::PathBuf::from(path))
}

/// Takes group and other permissions off a SQLite database and its
/// write-ahead log, shared memory and journal, where they exist.
fn tighten_sqlite_files(path: &Path) -> StoreResult<()> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        crate::private::tighten(Path::new(&file), crate::private::FILE_MODE).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
    }
    Ok(())
}

/// What store calls return.
pub type StoreResult<T> = Result<T, StoreError>;

/// How many times a busy operation is tried before giving up.
const ATTEMPTS: u32 = 12;

/// The backend's database.
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
    quotas: Quotas,
}

impl Store {
    /// Opens (creating) the SQLite database at `path`, in WAL mode, and
    /// migrates it. The file is made 0600 before SQLite opens it, so its
    /// write-ahead log and shared-memory files, which SQLite creates with
    /// the database file's mode, are 0600 too; ones an earlier release
    /// left open are tightened.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened or migrated.
    pub async fn open_file(path: &Path) -> StoreResult<Store> {
        crate::private::touch(path).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        let url = format!("sqlite://{}?mode=rwc", path.display());
        Self::open(&url).await
    }

    /// Opens the database at `url` (`sqlite://...` or `postgres://...`) and
    /// migrates it.
    ///
    /// # Errors
    ///
    /// When the database cannot be reached or migrated.
    pub async fn open(url: &str) -> StoreResult<Store> {
        sqlx::any::install_default_drivers();
        let dialect = if url.starts_with("postgres") { Dialect::Postgres } else { Dialect::Sqlite };
        if let Some(path) = sqlite_file(url).filter(|_| dialect == Dialect::Sqlite) {
            tighten_sqlite_files(&path)?;
        }
        let options: AnyConnectOptions = url.parse()?;
        let pool = AnyPoolOptions::new()
            .max_connections(if dialect == Dialect::Sqlite { 4 } else { 8 })
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        // Several processes share the file: readers never
                        // wait for the writer, and a writer waits its turn
                        // (a second at a time; `retry` waits longer).
                        sqlx::raw_sql("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 1000;")
                            .execute(connection)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        let store = Store { pool, dialect, quotas: Quotas::default() };
        migrations::migrate(&store).await?;
        Ok(store)
    }

    /// The engine behind this store.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// This store with each owner held to `quotas` (default:
    /// [`Quotas::default`]).
    pub fn with_quotas(mut self, quotas: Quotas) -> Self {
        self.quotas = quotas;
        self
    }

    /// The quotas each owner is held to.
    pub fn quotas(&self) -> &Quotas {
        &self.quotas
    }

    /// Takes `owner_id`'s turn for a quota check in `tx`: a write to the
    /// owner's row, which PostgreSQL holds until `tx` ends, so checks of
    /// one owner on any host run one at a time and each counts what the one
    /// before it added. (SQLite's write transactions already run one at a
    /// time.) Call it before counting.
    pub(crate) async fn quota_turn(tx: &mut Transaction<'static, Any>, owner_id: &str) -> StoreResult<()> {
        sqlx::query("INSERT INTO quota_owners (owner_id, turns) VALUES ($1, 1) ON CONFLICT (owner_id) DO UPDATE SET turns = quota_owners.turns + 1")
            .bind(owner_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// How many bytes `owner_id` stores, counted in `tx`: its tasks'
    /// arguments and results, and its registries' directories (each once).
    pub(crate) async fn stored_bytes_in(&self, tx: &mut Transaction<'static, Any>, owner_id: &str) -> StoreResult<u64> {
        use sqlx::Row;
        // Bytes, not characters: SQLite counts a blob's bytes, PostgreSQL
        // a text's octets. Sums are cast, since PostgreSQL sums BIGINTs as
        // NUMERIC.
        const SQLITE: &str = "SELECT
                CAST((SELECT COALESCE(SUM(LENGTH(CAST(arguments AS BLOB)) + COALESCE(LENGTH(CAST(result AS BLOB)), 0)), 0) FROM tasks WHERE owner_id = $1) AS BIGINT) AS tasks,
                CAST((SELECT COALESCE(SUM(bytes), 0) FROM (SELECT MAX(bytes) AS bytes FROM registry_tasks WHERE owner_id = $1 GROUP BY dir) r) AS BIGINT) AS registries";
        const POSTGRES: &str = "SELECT
                CAST((SELECT COALESCE(SUM(OCTET_LENGTH(arguments) + COALESCE(OCTET_LENGTH(result), 0)), 0) FROM tasks WHERE owner_id = $1) AS BIGINT) AS tasks,
                CAST((SELECT COALESCE(SUM(bytes), 0) FROM (SELECT MAX(bytes) AS bytes FROM registry_tasks WHERE owner_id = $1 GROUP BY dir) r) AS BIGINT) AS registries";
        let row = sqlx::query(if self.dialect == Dialect::Postgres { POSTGRES } else { SQLITE })
        .bind(owner_id)
        .fetch_one(&mut **tx)
        .await?;
        let (tasks, registries): (i64, i64) = (row.try_get("tasks")?, row.try_get("registries")?);
        Ok(tasks.max(0) as u64 + registries.max(0) as u64)
    }
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Runs `operation` until it succeeds or fails for a reason other than a
    /// busy database, backing off between attempts.
    pub(crate) async fn retry<T, F, Fut>(&self, mut operation: F) -> StoreResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = StoreResult<T>>,
    {
        let mut pause = Duration::from_millis(5);
        for _ in 1..ATTEMPTS {
            match operation().await {
                Err(e) if e.is_transient() => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                other => return other,
            }
        }
        match operation().await {
            Err(e) if e.is_transient() => Err(StoreError::Busy { attempts: ATTEMPTS }),
            other => other,
        }
    }

    /// Begins a write transaction. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so a check and the write it guards cannot
    /// interleave with another process's; on PostgreSQL the statements lock
    /// the rows they guard.
    pub(crate) async fn begin_write(&self) -> StoreResult<Transaction<'static, Any>> {
        let statement = match self.dialect {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        };
        Ok(self.pool.begin_with(statement).await?)
    }
}
