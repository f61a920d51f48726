//! CPU time the run cost, per checkout: what a checkout costs the machine, which a rate alone
//! hides (a rate can rise by burning more cores). Two readings, each taken just before and just
//! after the measured run:
//!
//! - **The service**: embedded, this process (which holds the buyers too, so the figure is the
//!   server's and the load's together); over `--url`, each server process on this machine,
//!   found by the port it listens on, and otherwise `process_cpu_seconds_total` from the
//!   instance's `GET /metrics` (admin token), which counts whole seconds only.
//! - **PostgreSQL**: the CPU of every `postgres` process on this machine (their own and their
//!   finished children's, from `/proc`), when the database is local and `/proc` can be read.
//! - **The delay line** (`--db-latency`, embedded): its threads in this process, read apart and
//!   taken out of the service's figure, since they stand for the network.

/// The counters read at one moment, in CPU seconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuReading {
    /// The service's processes (see the module docs), when their metrics could be read.
    pub service: Option<f64>,
    /// Every local PostgreSQL process, when the database is local.
    pub database: Option<f64>,
    /// The delay line's threads, when one runs in this process.
    pub delay_line: Option<f64>,
}

impl CpuReading {
    /// CPU milliseconds per checkout between `self` (before) and `after`.
    pub fn per_checkout(self, after: CpuReading, checkouts: u64) -> CpuReading {
        let per = |before: Option<f64>, after: Option<f64>| {
            let used = after? - before?;
            (checkouts > 0 && used >= 0.0).then(|| used * 1e3 / checkouts as f64)
        };
        CpuReading {
            service: per(self.service, after.service),
            database: per(self.database, after.database),
            delay_line: per(self.delay_line, after.delay_line),
        }
    }
}

/// The value of `process_cpu_seconds_total` in a Prometheus text scrape.
pub fn process_cpu_seconds(scrape: &str) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let value = line.strip_prefix("process_cpu_seconds_total")?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// True when `url` names a PostgreSQL server on this machine (loopback or a Unix socket),
/// whose processes `/proc` shows.
pub fn is_local_postgres(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    else {
        return false;
    };
    let host = rest
        .rsplit_once('@')
        .map_or(rest, |(_, host)| host)
        .split(['/', '?'])
        .next()
        .unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(name, _)| name);
    host.is_empty() || is_loopback(host) || rest.contains("host=/")
}

/// True when `host` (as a URL writes it) names this machine over the loopback interface.
pub fn is_loopback(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

/// CPU seconds of every `postgres` process, with the children they reaped (the server's
/// finished backends); `None` without a readable `/proc`.
pub fn postgres_cpu_seconds() -> Option<f64> {
    let mut ticks = 0u64;
    for pid in pids()? {
        // A process may end between the listing and the read: it then counts in its parent's.
        if let Some(stat) = read_stat(pid) {
            ticks += ticks_of(&stat, Some("postgres")).unwrap_or(0);
        }
    }
    Some(seconds(ticks))
}

/// CPU seconds of process `pid` (its own and its reaped children's), from `/proc`.
pub fn process_cpu_seconds_of(pid: u32) -> Option<f64> {
    Some(seconds(ticks_of(&read_stat(pid)?, None)?))
}

/// The CPU seconds of this process, at `/proc`'s resolution (a clock tick).
pub fn own_cpu_seconds() -> Option<f64> {
    process_cpu_seconds_of(std::process::id())
}

/// The process that listens on TCP `port` of this machine, found through `/proc` (the socket's
/// inode, then the process holding it); `None` if none can be seen.
pub fn pid_listening_on(port: u16) -> Option<u32> {
    let inodes: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|table| listening_inodes(&table, port))
        .collect();
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    pids()?.into_iter().find(|pid| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .any(|link| wanted.iter().any(|w| link.as_os_str() == w.as_str()))
    })
}

/// The inodes of the sockets listening on `port` in a `/proc/net/tcp` table.
fn listening_inodes(table: &str, port: u16) -> Vec<String> {
    const LISTEN: &str = "0A";
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields.get(1)?.rsplit_once(':')?.1;
            let listening = fields.get(3) == Some(&LISTEN);
            (listening && u16::from_str_radix(local_port, 16).ok()? == port)
                .then(|| fields.get(9).map(|inode| (*inode).to_owned()))
                .flatten()
        })
        .collect()
}

/// CPU seconds of this process's threads named `name`; `None` without a readable `/proc`. A
/// thread that ended takes its count with it.
pub fn own_threads_cpu_seconds(name: &str) -> Option<f64> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    Some(
        tasks
            .flatten()
            .map(|task| task.path())
            .filter(|task| {
                std::fs::read_to_string(task.join("comm")).is_ok_and(|comm| comm.trim_end() == name)
            })
            .filter_map(|task| thread_cpu_seconds(&task))
            .sum(),
    )
}

/// CPU seconds the calling thread has used so far; `None` without a readable `/proc`.
pub fn this_thread_cpu_seconds() -> Option<f64> {
    thread_cpu_seconds(std::path::Path::new("/proc/thread-self"))
}

/// The time on a CPU of the thread whose `/proc` folder is `task`: the scheduler's count in
/// nanoseconds (`schedstat`) where the kernel keeps it, else its ticks in `stat`, which miss
/// much of a thread that runs in bursts shorter than a tick, as the delay line's do.
fn thread_cpu_seconds(task: &std::path::Path) -> Option<f64> {
    let scheduled = std::fs::read_to_string(task.join("schedstat"))
        .ok()
        .and_then(|line| nanoseconds_on_cpu(&line));
    if let Some(nanoseconds) = scheduled {
        return Some(nanoseconds as f64 / 1e9);
    }
    let stat = std::fs::read_to_string(task.join("stat")).ok()?;
    let (_, times) = name_and_times(&stat)?;
    Some(seconds(times[0] + times[1]))
}

/// The first field of a `schedstat` line: nanoseconds spent on a CPU.
fn nanoseconds_on_cpu(schedstat: &str) -> Option<u64> {
    schedstat.split_whitespace().next()?.parse().ok()
}

fn pids() -> Option<Vec<u32>> {
    let entries = std::fs::read_dir("/proc").ok()?;
    Some(
        entries
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
            .collect(),
    )
}

fn read_stat(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()
}

fn seconds(ticks: u64) -> f64 {
    ticks as f64 / rustix::param::clock_ticks_per_second() as f64
}

/// utime + stime + cutime + cstime of one `/proc/<pid>/stat` line, if its process is named
/// `name` (any, for `None`).
fn ticks_of(stat: &str, name: Option<&str>) -> Option<u64> {
    let (comm, times) = name_and_times(stat)?;
    if name.is_some_and(|name| name != comm) {
        return None;
    }
    Some(times.iter().sum())
}

/// The name in a `/proc` stat line and its utime, stime, cutime and cstime, in clock ticks.
fn name_and_times(stat: &str) -> Option<(&str, [u64; 4])> {
    let (head, rest) = stat.rsplit_once(')')?;
    let comm = head.split_once('(')?.1;
    // After the name: state (field 3) … utime is field 14, so the 12th from here.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let mut times = [0u64; 4];
    for (time, field) in times.iter_mut().zip(fields.get(11..15)?) {
        *time = field.parse().ok()?;
    }
    Some((comm, times))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scrape_gives_the_process_cpu_seconds() {
        let scrape = "# HELP process_cpu_seconds_total CPU\n# TYPE process_cpu_seconds_total counter\n\
                      process_cpu_seconds_total 12.5\nprocess_threads 9\n";
        assert_eq!(process_cpu_seconds(scrape), Some(12.5));
        assert_eq!(process_cpu_seconds("process_threads 9\n"), None);
    }

    #[test]
    fn local_postgres_is_loopback_or_a_socket() {
        for local in [
            "postgres://bench@127.0.0.1:5432/shop",
            "postgres://localhost/shop",
            "postgresql://u:p@[::1]:5432/shop",
            "postgres:///shop?host=/var/run/postgresql",
        ] {
            assert!(is_local_postgres(local), "{local}");
        }
        for remote in ["postgres://db.example.com/shop", "sqlite:///tmp/a.db"] {
            assert!(!is_local_postgres(remote), "{remote}");
        }
    }

    #[test]
    fn only_postgres_processes_count_with_their_reaped_children() {
        let postgres = "812 (postgres) S 1 812 812 0 -1 4194560 900 0 0 0 150 50 30 20 20 0 1 0";
        assert_eq!(ticks_of(postgres, Some("postgres")), Some(250));
        let other = "900 (bash) S 1 900 900 0 -1 4194560 900 0 0 0 150 50 30 20 20 0 1 0";
        assert_eq!(ticks_of(other, Some("postgres")), None);
        assert_eq!(ticks_of(other, None), Some(250));
    }

    #[test]
    fn a_listening_socket_is_found_by_its_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1\n\
           1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 4343 1\n";
        assert_eq!(listening_inodes(table, 8080), ["4242"]);
        assert!(listening_inodes(table, 8081).is_empty());
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        let spent = (0..200_000u64).fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(b));
        assert!(own_cpu_seconds().is_some(), "{spent}");
    }

    #[test]
    fn the_scheduler_counts_nanoseconds_first() {
        assert_eq!(nanoseconds_on_cpu("1234567 890 12\n"), Some(1_234_567));
        assert_eq!(nanoseconds_on_cpu(""), None);
    }

    #[test]
    fn the_cpu_of_named_threads_is_read_apart() {
        let name = "cpu-test-spin";
        let spun = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(|| {
                let started = std::time::Instant::now();
                let mut spent = 0u64;
                while started.elapsed() < std::time::Duration::from_millis(300) {
                    spent = spent.wrapping_mul(31).wrapping_add(1);
                }
                let seconds = own_threads_cpu_seconds("cpu-test-spin");
                let own = this_thread_cpu_seconds();
                (spent, seconds.zip(own))
            })
            .unwrap();
        let (spent, seconds) = spun.join().unwrap();
        let (by_name, own) = seconds.expect("/proc is readable");
        assert!(by_name > 0.0, "{spent}: {by_name}");
        assert!(own >= by_name, "{own} < {by_name}");
        assert_eq!(own_threads_cpu_seconds("no-such-thread"), Some(0.0));
    }

    #[test]
    fn per_checkout_needs_both_readings() {
        let before = CpuReading {
            service: Some(10.0),
            database: None,
            delay_line: Some(1.0),
        };
        let after = CpuReading {
            service: Some(11.0),
            database: Some(3.0),
            delay_line: Some(1.5),
        };
        let per = before.per_checkout(after, 1000);
        assert_eq!(per.service, Some(1.0));
        assert_eq!(per.database, None);
        assert_eq!(per.delay_line, Some(0.5));
    }
}
