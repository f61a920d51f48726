//! The summary: a table for people, one JSON line for scripts.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{Value, json};

use super::{BenchOptions, Measured, peak_rss_mib, percentiles};

/// The mode of a run against `--url` servers: the one whose service CPU is the servers' alone.
const REMOTE: &str = "HTTP (remote)";

/// Everything one run measured.
#[derive(Debug, Clone)]
pub struct Report {
    mode: &'static str,
    buyers: usize,
    instances: usize,
    db_latency_ms: Option<f64>,
    stored_orders: Option<u64>,
    seconds: f64,
    checkouts: u64,
    checkouts_per_sec: f64,
    requests_per_sec: f64,
    whole: Option<[f64; 4]>,
    to_awaiting: Option<[f64; 4]>,
    to_settled: Option<[f64; 4]>,
    outcomes: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
    problems: Vec<String>,
    baseline_per_sec: Option<f64>,
    peak_rss_mib: Option<f64>,
    console: Option<Vec<super::PageTime>>,
    /// CPU milliseconds per settled checkout (see [`crate::cpu`]).
    cpu: crate::cpu::CpuReading,
}

impl Report {
    /// Summarises a run (and the baseline run, if any).
    pub fn new(
        options: &BenchOptions,
        run: Measured,
        problems: Vec<String>,
        baseline: Option<Measured>,
    ) -> Self {
        let seconds = run.elapsed.as_secs_f64().max(0.001);
        let summary = &run.summary;
        let completed = summary.completed;
        let baseline_per_sec =
            baseline.map(|b| b.summary.completed as f64 / b.elapsed.as_secs_f64().max(0.001));
        Self {
            mode: if options.engine {
                "engine (in-process)"
            } else if !options.urls.is_empty() {
                REMOTE
            } else {
                "HTTP (embedded)"
            },
            buyers: options.buyers,
            instances: options.urls.len().max(options.instances).max(1),
            db_latency_ms: options.db_latency.map(|d| d.as_secs_f64() * 1000.0),
            stored_orders: None,
            seconds,
            checkouts: completed,
            checkouts_per_sec: completed as f64 / seconds,
            requests_per_sec: run.requests as f64 / seconds,
            whole: percentiles(&summary.whole),
            to_awaiting: percentiles(&summary.to_awaiting),
            to_settled: percentiles(&summary.to_settled),
            outcomes: summary.by_outcome.clone(),
            errors: run.errors,
            problems,
            baseline_per_sec,
            peak_rss_mib: peak_rss_mib(),
            console: None,
            cpu: crate::cpu::CpuReading::default(),
        }
    }

    /// Notes how many orders the database held when the run began (`--stored-orders`).
    pub fn with_stored(self, stored_orders: Option<u64>) -> Self {
        Self {
            stored_orders,
            ..self
        }
    }

    /// Adds the console's page times (`--time-console`).
    pub fn with_console(self, console: Option<Vec<super::PageTime>>) -> Self {
        Self { console, ..self }
    }

    /// Adds the CPU milliseconds per checkout of the measured run.
    pub fn with_cpu(self, cpu: crate::cpu::CpuReading) -> Self {
        Self { cpu, ..self }
    }

    /// Whose CPU the service figure counts: embedded, the buyers share the process (the delay
    /// line, when one runs, is counted apart).
    fn service_cpu_scope(&self) -> &'static str {
        if self.mode == REMOTE {
            "the server processes alone"
        } else if self.cpu.delay_line.is_some() {
            "the one process: server and buyers, without the delay line"
        } else {
            "the one process: server and buyers"
        }
    }

    /// True when stock was conserved, nothing stayed reserved and no order got stuck.
    pub fn invariants_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The summary for a terminal.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "mode            {} | {} buyers | {:.1} s",
            self.mode, self.buyers, self.seconds
        );
        if self.instances > 1 {
            let _ = write!(out, " | {} instances", self.instances);
        }
        if let Some(ms) = self.db_latency_ms {
            let _ = write!(out, " | database {ms} ms away");
        }
        if let Some(orders) = self.stored_orders {
            let _ = write!(out, " | {orders} orders stored before");
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "checkouts       {} completed, {:.1}/s",
            self.checkouts, self.checkouts_per_sec
        );
        let _ = writeln!(out, "requests        {:.1}/s", self.requests_per_sec);
        let _ = writeln!(out, "latency (ms)          p50      p95      p99      max");
        for (name, values) in [
            ("whole checkout", self.whole),
            ("to await payment", self.to_awaiting),
            ("pay to settled", self.to_settled),
        ] {
            if let Some([p50, p95, p99, max]) = values {
                let _ = writeln!(
                    out,
                    "  {name:<17} {p50:>8.1} {p95:>8.1} {p99:>8.1} {max:>8.1}"
                );
            }
        }
        let _ = writeln!(out, "outcomes");
        for (outcome, count) in &self.outcomes {
            let _ = writeln!(out, "  {count:>7}  {outcome}");
        }
        if !self.errors.is_empty() {
            let _ = writeln!(out, "errors");
            for (kind, count) in &self.errors {
                let _ = writeln!(out, "  {count:>7}  {kind}");
            }
        }
        if let Some(baseline) = self.baseline_per_sec {
            let _ = writeln!(
                out,
                "baseline        {baseline:.1} checkouts/s of plain SQL; ratio {:.2}",
                self.ratio().unwrap_or(0.0)
            );
        }
        if self.cpu.service.is_some() || self.cpu.database.is_some() {
            let shown =
                |ms: Option<f64>| ms.map_or("unknown".to_owned(), |ms| format!("{ms:.3} ms"));
            let delay_line = self
                .cpu
                .delay_line
                .map(|ms| format!(" | {ms:.3} ms the delay line"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "CPU/checkout    {} service ({}) | {} PostgreSQL{delay_line}",
                shown(self.cpu.service),
                self.service_cpu_scope(),
                shown(self.cpu.database),
            );
        }
        if let Some(rss) = self.peak_rss_mib {
            let _ = writeln!(out, "peak RSS        {rss:.1} MiB");
        }
        if self.problems.is_empty() {
            let _ = writeln!(
                out,
                "invariants      ok: stock conserved, nothing reserved, no order stuck"
            );
        } else {
            let _ = writeln!(out, "invariants      VIOLATED");
            for problem in &self.problems {
                let _ = writeln!(out, "  {problem}");
            }
        }
        if let Some(pages) = &self.console {
            let _ = writeln!(out, "console (ms)      median  slowest  status  page");
            for page in pages {
                let _ = writeln!(
                    out,
                    "  {:>14.1} {:>8.1} {:>7}  {}",
                    page.median.as_secs_f64() * 1000.0,
                    page.slowest.as_secs_f64() * 1000.0,
                    page.status,
                    page.path
                );
            }
        }
        out
    }

    fn ratio(&self) -> Option<f64> {
        self.baseline_per_sec
            .filter(|b| *b > 0.0)
            .map(|b| self.checkouts_per_sec / b)
    }

    /// The same as one JSON object.
    pub fn json(&self) -> Value {
        let latency = |values: Option<[f64; 4]>| {
            values.map(
                |[p50, p95, p99, max]| json!({ "p50": p50, "p95": p95, "p99": p99, "max": max }),
            )
        };
        let mut report = json!({
            "mode": self.mode,
            "buyers": self.buyers,
            "instances": self.instances,
            "dbLatencyMs": self.db_latency_ms,
            "storedOrders": self.stored_orders,
            "seconds": self.seconds,
            "checkouts": self.checkouts,
            "checkoutsPerSec": self.checkouts_per_sec,
            "requestsPerSec": self.requests_per_sec,
            "latencyMs": latency(self.whole),
            "toAwaitingPaymentMs": latency(self.to_awaiting),
            "payToSettledMs": latency(self.to_settled),
            "outcomes": self.outcomes,
            "errors": self.errors,
            "invariantsOk": self.invariants_ok(),
            "problems": self.problems,
            "peakRssMib": self.peak_rss_mib,
            "cpuMsPerCheckout": {
                "service": self.cpu.service,
                "serviceCounts": self.service_cpu_scope(),
                "postgres": self.cpu.database,
                "delayLine": self.cpu.delay_line,
            },
        });
        if let Some(baseline) = self.baseline_per_sec {
            report["baselineCheckoutsPerSec"] = json!(baseline);
            report["ratio"] = json!(self.ratio());
        }
        if let Some(pages) = &self.console {
            let pages: Vec<Value> = pages
                .iter()
                .map(|page| {
                    json!({
                        "path": page.path,
                        "medianMs": page.median.as_secs_f64() * 1000.0,
                        "slowestMs": page.slowest.as_secs_f64() * 1000.0,
                        "status": page.status,
                    })
                })
                .collect();
            report["consoleMs"] = json!(pages);
        }
        report
    }
}
