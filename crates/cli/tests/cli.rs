//! The `microcommerce` binary as a user runs it: the help of every command, and `bench` end to
//! end (an embedded server on a fresh temporary SQLite file, so nothing is skipped).

mod support;

#[test]
fn the_cli_prints_the_report_as_json_on_its_last_line() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_microcommerce"))
        .args([
            "bench",
            "--checkouts",
            "6",
            "--buyers",
            "2",
            "--synchronous",
            "normal",
            "--json",
        ])
        .output()
        .expect("the binary runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().expect("some output");
    let json: serde_json::Value = serde_json::from_str(last).expect("the last line is JSON");
    assert_eq!(json["invariantsOk"], true, "{stdout}");
    assert!(stdout.contains("checkouts"), "{stdout}");
}

#[test]
fn every_command_has_help() {
    for (args, expected) in [
        (&["--help"][..], &["serve", "migrate", "bench"][..]),
        (
            &["serve", "--help"],
            &[
                "--addr",
                "--database-url",
                "--rate-limit",
                "--rate-burst",
                "--request-timeout",
                "--max-long-polls",
                "--connect-timeout",
            ],
        ),
        (&["migrate", "--help"], &["--database-url"]),
        (
            &["bench", "--help"],
            &["--url", "--engine", "--baseline", "--json"],
        ),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_microcommerce"))
            .args(args)
            .output()
            .expect("the binary runs");
        assert!(output.status.success(), "{args:?}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        for option in expected {
            assert!(stdout.contains(option), "{args:?} lacks {option}: {stdout}");
        }
    }
}

#[test]
fn a_log_filter_that_does_not_parse_is_an_error_from_the_option_or_rust_log() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let database = format!("sqlite://{}", dir.path().join("log.db").display());
    let run = |args: &[&str], rust_log: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_microcommerce"));
        command.args(args).env_remove("MICROCOMMERCE_LOG");
        match rust_log {
            Some(value) => command.env("RUST_LOG", value),
            None => command.env_remove("RUST_LOG"),
        };
        command.output().expect("the binary runs")
    };
    let bad_option = run(
        &[
            "--log-level",
            "verbose",
            "migrate",
            "--database-url",
            &database,
        ],
        None,
    );
    assert_eq!(bad_option.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad_option.stderr);
    assert!(stderr.contains("`verbose` is neither a level"), "{stderr}");

    let bad_rust_log = run(&["migrate", "--database-url", &database], Some("bus=loud"));
    assert_eq!(bad_rust_log.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad_rust_log.stderr);
    assert!(stderr.contains("RUST_LOG"), "{stderr}");

    // The option wins over a RUST_LOG that would not parse.
    let both = run(
        &[
            "--log-level",
            "warn",
            "migrate",
            "--database-url",
            &database,
        ],
        Some("bus=loud"),
    );
    assert!(
        both.status.success(),
        "{}",
        String::from_utf8_lossy(&both.stderr)
    );
}

#[test]
fn limits_that_would_turn_every_request_away_are_refused() {
    for (flag, value) in [
        ("--request-timeout", "0s"),
        ("--rate-burst", "0"),
        ("--connect-timeout", "0s"),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_microcommerce"))
            .args(["serve", flag, value])
            .output()
            .expect("the binary runs");
        assert_eq!(output.status.code(), Some(2), "{flag} {value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(flag), "{stderr}");
    }
}

#[test]
fn serve_with_an_unreachable_database_exits_naming_the_server_and_the_cause() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_microcommerce"))
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--database-url",
            "postgres://postgres:hunter2@127.0.0.1:1/shop",
        ])
        .env_remove("MICROCOMMERCE_ADMIN_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    // A bound on the whole run, so that a regression fails the test instead of hanging it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while child
        .try_wait()
        .expect("the child can be waited on")
        .is_none()
    {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve was still running after two minutes with no database");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("the output is read");
    assert!(!output.status.success(), "serve exits with an error");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stderr.contains("127.0.0.1:1") && stderr.contains("refused"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2") && !stdout.contains("hunter2"));
}

#[test]
fn serve_on_a_port_already_taken_stops_before_touching_the_database_or_printing_a_token() {
    // Held for the whole test, so the port stays taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let addr = taken.local_addr().expect("a bound address").to_string();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("shop.db");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_microcommerce"))
        .args(["serve", "--addr", &addr, "--database-url"])
        .arg(format!("sqlite://{}", db.display()))
        .env_remove("MICROCOMMERCE_ADMIN_TOKEN")
        .output()
        .expect("the binary runs");
    assert!(!output.status.success(), "serve exits with an error");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
    assert!(
        !stdout.contains("admin token"),
        "no token for a start that failed: {stdout}"
    );
    assert!(
        !db.exists(),
        "the database was neither created nor migrated"
    );
}

/// One request to `addr` over a plain TCP connection; the answer's status line and headers.
fn ask(addr: &str, path: &str, request_id: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("the server accepts");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nx-request-id: {request_id}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).expect("request sent");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer read");
    answer
}

#[test]
fn serve_writes_one_access_line_per_request_with_its_route_template_and_request_id() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let database = format!("sqlite://{}", dir.path().join("shop.db").display());
    let server = support::serve(&["--no-seed", "--database-url", &database], &[]);
    let addr = server.addr.clone();
    let order = "0190d6a0-0000-7000-8000-000000000001";
    let answer = ask(
        &addr,
        &format!("/api/ordering/orders/{order}"),
        "cli-check-1",
    );
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("x-request-id: cli-check-1"),
        "{answer}"
    );
    let logs = server.stop();
    let access: Vec<&serde_json::Value> = logs
        .iter()
        .filter(|line| line["target"] == "access")
        .collect();
    assert_eq!(access.len(), 1, "one line for one request: {logs:?}");
    let fields = &access[0]["fields"];
    assert_eq!(fields["method"], "GET");
    assert_eq!(
        fields["route"], "/api/ordering/orders/{id}",
        "the template, not the path"
    );
    assert_eq!(fields["status"], 404);
    assert_eq!(fields["request_id"], "cli-check-1");
    assert_eq!(fields["client"], "127.0.0.1");
    assert!(fields["duration_ms"].as_f64().is_some(), "{fields}");
}
