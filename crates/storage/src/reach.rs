//! First contact with PostgreSQL: one direct connection, with a deadline, before the pools open.
//!
//! A pool retries a failing connection until its acquire timeout and then reports only that it
//! timed out; an operator needs to know where the service looked and why it got no database.
//! So [`check`] connects once by hand, in two steps (the network, then PostgreSQL's start-up
//! with TLS as the URL asks), and names the server and the cause of a failure.

use std::io;
use std::str::FromStr;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};

use crate::error::{ConnectCause, DbError};

/// Connects to the PostgreSQL server of `url` once and closes the connection; a failure names
/// the server (never the password) and its cause. Each of the two steps waits at most `limit`.
pub(crate) async fn check(url: &str, limit: Duration) -> Result<(), DbError> {
    let options = PgConnectOptions::from_str(url)?;
    let server = server_name(&options);
    let fail = |cause| DbError::Connect {
        server: server.clone(),
        cause,
    };
    if let Some(cause) = unreadable_tls_file(url, options.get_ssl_mode()) {
        return Err(fail(cause));
    }
    if options.get_socket().is_none() {
        let address = (options.get_host(), options.get_port());
        match tokio::time::timeout(limit, tokio::net::TcpStream::connect(address)).await {
            Err(_) => return Err(fail(ConnectCause::TimedOut(limit))),
            Ok(Err(error)) => return Err(fail(ConnectCause::Network(io_cause(&error)))),
            Ok(Ok(_reachable)) => {}
        }
    }
    match tokio::time::timeout(limit, PgConnection::connect_with(&options)).await {
        Err(_) => Err(fail(ConnectCause::TimedOut(limit))),
        Ok(Err(error)) => Err(fail(start_up_cause(error))),
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
            Ok(())
        }
    }
}

/// A certificate or key file the URL names for the TLS it asks for that cannot be read; the
/// driver would say only "No such file or directory", without the file's name.
fn unreadable_tls_file(url: &str, mode: PgSslMode) -> Option<ConnectCause> {
    let verifies = matches!(mode, PgSslMode::VerifyCa | PgSslMode::VerifyFull);
    let tls = verifies || matches!(mode, PgSslMode::Prefer | PgSslMode::Require);
    let url = sqlx_core::Url::parse(url).ok()?;
    url.query_pairs().find_map(|(key, value)| {
        let used = match &*key {
            "sslrootcert" | "ssl-root-cert" | "ssl-ca" => verifies,
            "sslcert" | "ssl-cert" | "sslkey" | "ssl-key" => tls,
            _ => false,
        };
        let inline_pem = value.trim_start().starts_with("-----BEGIN");
        if !used || inline_pem {
            return None;
        }
        let error = std::fs::File::open(&*value).err()?;
        Some(ConnectCause::Tls(format!(
            "cannot read the {key} file {value}: {error}"
        )))
    })
}

/// Where the server is, as an operator wrote it: `host:port` (an IPv6 host in brackets), or
/// the Unix socket's folder.
fn server_name(options: &PgConnectOptions) -> String {
    let (host, port) = (options.get_host(), options.get_port());
    match options.get_socket() {
        Some(folder) => format!("{} (Unix socket, port {port})", folder.display()),
        None if host.contains(':') && !host.starts_with('[') => format!("[{host}]:{port}"),
        None => format!("{host}:{port}"),
    }
}

/// The cause of a failure after the network let us through: the TLS handshake or PostgreSQL's
/// start-up. rustls reports a certificate it rejects as invalid data on the socket.
fn start_up_cause(error: sqlx::Error) -> ConnectCause {
    match error {
        sqlx::Error::Tls(error) => ConnectCause::Tls(error.to_string()),
        sqlx::Error::Io(error) if error.kind() == io::ErrorKind::InvalidData => {
            ConnectCause::Tls(format!("handshake failed: {error}"))
        }
        sqlx::Error::Io(error) if error.kind() == io::ErrorKind::NotFound => {
            ConnectCause::Tls(format!("cannot read a certificate or key file: {error}"))
        }
        sqlx::Error::Io(error) => ConnectCause::Network(io_cause(&error)),
        sqlx::Error::Database(error) => ConnectCause::Refused(error.message().to_owned()),
        sqlx::Error::Protocol(message) => ConnectCause::NotPostgres(message),
        sqlx::Error::Configuration(error) => ConnectCause::Settings(error.to_string()),
        other => ConnectCause::Refused(other.to_string()),
    }
}

/// A network error in plain words (`connection refused`), without the OS error number.
fn io_cause(error: &io::Error) -> String {
    use io::ErrorKind::*;
    match error.kind() {
        kind @ (ConnectionRefused | ConnectionReset | ConnectionAborted | HostUnreachable
        | NetworkUnreachable | AddrNotAvailable | TimedOut | PermissionDenied) => kind.to_string(),
        _ => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_port_where_nothing_listens_is_named_with_its_cause() {
        let error = check(
            "postgres://postgres:secret@127.0.0.1:1/x",
            Duration::from_secs(5),
        )
        .await
        .expect_err("nothing listens on port 1");
        let message = error.to_string();
        assert_eq!(
            message,
            "cannot connect to PostgreSQL at 127.0.0.1:1: connection refused"
        );
        assert!(!message.contains("secret"));
    }

    #[tokio::test]
    async fn a_server_that_accepts_but_never_answers_fails_after_the_connect_timeout() {
        // The system completes the TCP handshake for a listener that never accepts.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = silent.local_addr().expect("bound").port();
        let mut options = crate::DbOptions::new(format!("postgres://postgres@127.0.0.1:{port}/x"));
        options.connect_timeout = Duration::from_millis(200);
        let error = crate::Db::connect(&options)
            .await
            .expect_err("no answer")
            .to_string();
        assert_eq!(
            error,
            format!("cannot connect to PostgreSQL at 127.0.0.1:{port}: no answer within 0.2 s")
        );
    }

    #[tokio::test]
    async fn a_missing_certificate_file_is_named_before_any_connection() {
        let url = "postgres://u@127.0.0.1:1/x?sslmode=verify-full&sslrootcert=/nowhere/ca.pem";
        let error = check(url, Duration::from_secs(5))
            .await
            .expect_err("no such file")
            .to_string();
        assert!(
            error.starts_with(
                "cannot connect to PostgreSQL at 127.0.0.1:1: TLS failed: \
                 cannot read the sslrootcert file /nowhere/ca.pem: "
            ),
            "{error}"
        );
    }

    #[test]
    fn a_certificate_file_is_not_needed_where_the_mode_does_not_read_it() {
        let url = "postgres://u@h/x?sslmode=require&sslrootcert=/nowhere/ca.pem";
        assert!(unreadable_tls_file(url, PgSslMode::Require).is_none());
        let url = "postgres://u@h/x?sslmode=disable&sslcert=/nowhere/c.pem&sslkey=/nowhere/k";
        assert!(unreadable_tls_file(url, PgSslMode::Disable).is_none());
    }

    #[test]
    fn a_rejected_certificate_is_a_tls_failure() {
        let rejected = io::Error::new(io::ErrorKind::InvalidData, "invalid peer certificate");
        let cause = start_up_cause(sqlx::Error::Io(rejected));
        assert_eq!(
            cause.to_string(),
            "TLS failed: handshake failed: invalid peer certificate"
        );
    }

    #[test]
    fn an_ipv6_server_is_written_with_brackets() {
        let options = PgConnectOptions::from_str("postgres://u@[::1]:5433/x").expect("parses");
        assert_eq!(server_name(&options), "[::1]:5433");
    }
}
