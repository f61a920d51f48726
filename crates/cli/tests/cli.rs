//! The `microcommerce` binary as a user runs it: the help of every command, and `bench` end to
//! end (an embedded server on a fresh temporary SQLite file, so nothing is skipped).

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
        (&["serve", "--help"], &["--addr", "--database-url"]),
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
