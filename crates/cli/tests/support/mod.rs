//! `serve` as a test starts it: a real process on a free port, its JSON log lines collected.

use std::io::BufRead;

use serde_json::Value;

/// The admin token every served process in the tests uses.
pub const ADMIN_TOKEN: &str = "cli-token";

/// A running `serve`; killed if the test ends without stopping it.
pub struct Served {
    /// Where it listens, `host:port`.
    pub addr: String,
    process: std::process::Child,
    logs: Option<std::thread::JoinHandle<String>>,
}

/// Starts `serve --addr 127.0.0.1:0 --log-json` with `args`, the log filter and the
/// OpenTelemetry variables of the test's own environment removed and `env` added, and waits
/// until it says where it listens.
pub fn serve(args: &[&str], env: &[(&str, &str)]) -> Served {
    let mut process = std::process::Command::new(env!("CARGO_BIN_EXE_microcommerce"))
        .args(["serve", "--addr", "127.0.0.1:0", "--log-json"])
        .args(args)
        .env("MICROCOMMERCE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env_remove("MICROCOMMERCE_LOG")
        .env_remove("RUST_LOG")
        .env_remove("OTEL_SDK_DISABLED")
        .env_remove("OTEL_TRACES_EXPORTER")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let stderr = process.stderr.take().expect("stderr");
    let logs = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let stdout = std::io::BufReader::new(process.stdout.take().expect("stdout"));
    let addr = stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("listening on http://").map(str::to_owned))
        .expect("serve says where it listens");
    Served {
        addr,
        process,
        logs: Some(logs),
    }
}

impl Served {
    /// Stops the server gracefully (SIGTERM, so that it finishes what it has, traces
    /// included) and returns its log lines that are JSON.
    pub fn stop(mut self) -> Vec<Value> {
        let _ = std::process::Command::new("kill")
            .arg(self.process.id().to_string())
            .status();
        let _ = self.process.wait();
        let logs = self.logs.take().expect("logs").join().expect("logs read");
        logs.lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
