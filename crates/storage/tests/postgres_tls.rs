//! PostgreSQL over TLS, through [`storage::Db::connect`] as the service opens its database: a
//! throwaway server with `ssl=on` and certificates made for it at test time (the `openssl`
//! binary), reached with `sslmode=require` and `sslmode=verify-full`; and the clear failures
//! when the server has no TLS or its certificate does not verify. Without PostgreSQL or openssl
//! a local run prints SKIPPED; CI (`CI` set) fails instead.

use storage::{Db, DbOptions};
use testkit::postgres::{self, Certificates, Server};

/// The shared server that accepts TLS and a new database on it, or `None` (after SKIPPED).
async fn tls_server_and_database() -> Option<(&'static Server, String)> {
    let server = testkit::required(
        "PostgreSQL with TLS (initdb, postgres and openssl)",
        postgres::shared_tls(),
    )?;
    let url = server.fresh_database().await;
    let name = url.rsplit('/').next().expect("a database name").to_owned();
    Some((server, name))
}

/// True when the connection a read of `db` gets is encrypted, as the server sees it.
async fn reads_are_encrypted(db: &Db) -> bool {
    sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(db.reader())
        .await
        .expect("pg_stat_ssl is readable")
}

async fn connect(url: String) -> Result<Db, storage::DbError> {
    Db::connect(&DbOptions::new(url)).await
}

#[tokio::test]
async fn require_encrypts_the_connection_and_disable_does_not() {
    let Some((server, database)) = tls_server_and_database().await else {
        return;
    };
    for (mode, encrypted) in [("require", true), ("disable", false)] {
        let url = format!("{}?sslmode={mode}", server.url(&database));
        let db = connect(url).await.expect("connects");
        assert_eq!(reads_are_encrypted(&db).await, encrypted, "sslmode={mode}");
        db.close().await;
    }
}

#[tokio::test]
async fn verify_full_accepts_the_servers_certificate_by_address_and_by_name() {
    let Some((server, database)) = tls_server_and_database().await else {
        return;
    };
    let ca = &server.certificates().expect("a TLS server").ca;
    for host in ["127.0.0.1", "localhost"] {
        let url = format!(
            "postgres://postgres@{host}:{}/{database}?sslmode=verify-full&sslrootcert={}",
            server.port(),
            ca.display()
        );
        let db = connect(url).await.expect("the certificate verifies");
        assert!(reads_are_encrypted(&db).await, "{host}");
        db.close().await;
    }
}

#[tokio::test]
async fn verify_full_with_another_authority_fails_naming_the_certificate() {
    let Some((server, database)) = tls_server_and_database().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary folder");
    let other = Certificates::generate(dir.path()).expect("openssl worked for the server");
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        server.url(&database),
        other.ca.display()
    );
    let error = connect(url)
        .await
        .expect_err("an unknown authority")
        .to_string();
    let server_at = format!("127.0.0.1:{}", server.port());
    assert!(error.contains(&server_at), "{error}");
    assert!(error.contains("TLS failed"), "{error}");
    assert!(
        error.contains("invalid peer certificate: UnknownIssuer"),
        "{error}"
    );
}

#[tokio::test]
async fn require_against_a_server_without_tls_is_refused_clearly() {
    let Some(server) = testkit::required("PostgreSQL (initdb, postgres)", postgres::shared())
    else {
        return;
    };
    let url = format!("{}?sslmode=require", server.url("postgres"));
    let error = connect(url).await.expect_err("no TLS there").to_string();
    assert_eq!(
        error,
        format!(
            "cannot connect to PostgreSQL at 127.0.0.1:{}: TLS failed: server does not support TLS",
            server.port()
        )
    );
}
