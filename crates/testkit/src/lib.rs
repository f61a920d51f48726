//! Test support shared by the workspace's test binaries.
//!
//! - [`eventually`]: wait for a condition with a deadline instead of sleeping.
//! - [`Backend`] and [`backend_tests!`]: run one test body on SQLite and on PostgreSQL.
//! - [`required`]: skip a test whose needs are missing, loudly, and never in CI.
//! - [`postgres`]: throwaway PostgreSQL servers started from the system binaries.
#![warn(missing_docs)]

pub mod postgres;

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` every 10 ms until it returns `Some`, and fails the test after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What a test needs from the machine (a server, a binary), or `None` after saying SKIPPED
/// when it is missing on a developer's machine. In CI (`CI` set) a missing need fails the test:
/// CI must never skip.
pub fn required<T>(what: &str, found: Result<T, String>) -> Option<T> {
    match found {
        Ok(value) => Some(value),
        Err(reason) if std::env::var_os("CI").is_some() => {
            panic!("{what} is required in CI: {reason}")
        }
        Err(reason) => {
            say_skipped(&format!("this test needs {what}: {reason}"));
            None
        }
    }
}

/// Says SKIPPED where a developer sees it: straight to the process's standard error, which the
/// test harness does not capture (it captures `eprintln!`, and shows that only for failures),
/// so that a skipped test is not read as a pass.
pub fn say_skipped(reason: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {reason}");
}

/// The database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A fresh database on this process's throwaway PostgreSQL server.
    Postgres,
}

impl Backend {
    /// `Some(Postgres)` when a server can run here. Without one, CI fails the test (it must never
    /// skip), and a developer's run says clearly that the PostgreSQL variant was skipped.
    pub fn postgres() -> Option<Backend> {
        required("PostgreSQL", postgres::shared()).map(|_| Backend::Postgres)
    }

    /// A URL to a new, empty database of this backend; `dir` holds SQLite files.
    pub async fn fresh_url(self, dir: &std::path::Path) -> String {
        match self {
            Backend::Sqlite => format!("sqlite://{}", dir.join("test.db").display()),
            Backend::Postgres => {
                postgres::shared()
                    .expect("checked by Backend::postgres")
                    .fresh_database()
                    .await
            }
        }
    }
}

/// Declares tests whose body runs once per backend: each `async fn name(backend) { … }` becomes
/// a module `name` with the tests `sqlite` and `postgres`, `backend` bound to a [`Backend`].
#[macro_export]
macro_rules! backend_tests {
    ($( $(#[$meta:meta])* async fn $name:ident($backend:ident) $body:block )*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                #[tokio::test]
                $(#[$meta])*
                async fn sqlite() {
                    let $backend = $crate::Backend::Sqlite;
                    $body
                }

                #[tokio::test]
                $(#[$meta])*
                async fn postgres() {
                    let Some($backend) = $crate::Backend::postgres() else {
                        return;
                    };
                    $body
                }
            }
        )*
    };
}
