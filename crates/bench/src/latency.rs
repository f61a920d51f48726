//! `--db-latency`: a delay line between the service and its PostgreSQL, so that anyone can
//! measure what a database one network hop away costs without a network to hand.
//!
//! A TCP proxy on 127.0.0.1 forwards every connection to the real server and holds each chunk
//! half the round trip in each direction. Chunks keep their order and their spacing (a delay
//! line, not a queue that sleeps per chunk), so pipelined traffic is not slowed beyond the
//! delay itself. A thread a direction, waiting in `poll` with a nanosecond timeout, keeps
//! sub-millisecond delays accurate, which an async timer, rounding up to whole milliseconds,
//! would not. Its threads are named [`THREAD_NAME`], so that the bench can tell their CPU from
//! the service's: the delay line stands for the network, and on a small box it spends as much
//! as a server.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rustix::event::{self, PollFd, PollFlags, Timespec};
use rustix::io::Errno;

/// The name of every thread of the delay line (at most 15 bytes, as Linux keeps them).
pub const THREAD_NAME: &str = "db-latency";

/// A running delay line; dropping it stops accepting (open connections end with their pools).
pub struct LatencyProxy {
    /// Where the proxy listens.
    addr: SocketAddr,
    /// Tells the accepting thread to stop.
    stop: Arc<AtomicBool>,
}

/// Why a database URL cannot be put behind the delay line.
#[derive(Debug, thiserror::Error)]
pub enum LatencyError {
    /// The URL names no host this bench can find.
    #[error("--db-latency: cannot find the database host of `{url}`: {reason}")]
    Host {
        /// The URL as given, password hidden.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The proxy could not listen.
    #[error("--db-latency: cannot listen on 127.0.0.1: {0}")]
    Listen(io::Error),
}

impl LatencyProxy {
    /// Starts a delay line of `round_trip` in front of the server `database_url` names and
    /// returns it with the URL that reaches the same database through it.
    pub fn start(database_url: &str, round_trip: Duration) -> Result<(Self, String), LatencyError> {
        let (authority, rewrite) = split_authority(database_url)
            .ok_or_else(|| host_error(database_url, "no host in the URL"))?;
        let target = resolve(authority).map_err(|reason| host_error(database_url, &reason))?;
        let listener = TcpListener::bind("127.0.0.1:0").map_err(LatencyError::Listen)?;
        let addr = listener.local_addr().map_err(LatencyError::Listen)?;
        let stop = Arc::new(AtomicBool::new(false));
        let one_way = round_trip / 2;
        let stopping = stop.clone();
        spawn(move || accept(listener, target, one_way, &stopping))
            .map_err(LatencyError::Listen)?;
        Ok((Self { addr, stop }, rewrite(&addr.to_string())))
    }
}

impl Drop for LatencyProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accepting thread so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// The `host:port` part of a URL (after any `user:password@`), and a function that rebuilds
/// the URL with another one in its place.
fn split_authority(url: &str) -> Option<(&str, impl Fn(&str) -> String + '_)> {
    let scheme_end = url.find("://")? + 3;
    let rest = &url[scheme_end..];
    let authority_end = scheme_end + rest.find(['/', '?']).unwrap_or(rest.len());
    let host_start = url[..authority_end]
        .rfind('@')
        .map_or(scheme_end, |at| at + 1);
    let authority = &url[host_start..authority_end];
    (!authority.is_empty()).then_some((authority, move |replacement: &str| {
        format!(
            "{}{replacement}{}",
            &url[..host_start],
            &url[authority_end..]
        )
    }))
}

/// The address of `host[:port]`, PostgreSQL's port 5432 when none is given.
fn resolve(authority: &str) -> Result<SocketAddr, String> {
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
    {
        authority.to_owned()
    } else {
        format!("{authority}:5432")
    };
    with_port
        .to_socket_addrs()
        .map_err(|error| error.to_string())?
        .next()
        .ok_or_else(|| "the host has no address".to_owned())
}

fn host_error(url: &str, reason: &str) -> LatencyError {
    LatencyError::Host {
        url: microcommerce_service::config::redact_password(url),
        reason: reason.to_owned(),
    }
}

/// Accepts connections until stopped; each gets a delay line per direction.
fn accept(listener: TcpListener, target: SocketAddr, one_way: Duration, stop: &AtomicBool) {
    for client in listener.incoming() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(client) = client else { continue };
        let server = match TcpStream::connect(target) {
            Ok(server) => server,
            Err(error) => {
                tracing::warn!(%error, %target, "--db-latency: cannot reach the database");
                continue;
            }
        };
        if let Err(error) = connect_pair(client, server, one_way) {
            tracing::warn!(%error, "--db-latency: cannot set up a connection");
        }
    }
}

/// Joins one client connection to its server connection, both ways delayed.
fn connect_pair(client: TcpStream, server: TcpStream, one_way: Duration) -> io::Result<()> {
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    delay_line(client.try_clone()?, server.try_clone()?, one_way)?;
    delay_line(server, client, one_way)
}

/// CPU microseconds of the delay line's threads that have ended (a connection closed).
static ENDED_CPU_MICROS: AtomicU64 = AtomicU64::new(0);

/// CPU seconds every delay line in this process has used: its running threads' and its ended
/// ones'; `None` without a readable `/proc`.
pub fn cpu_seconds() -> Option<f64> {
    let running = crate::cpu::own_threads_cpu_seconds(THREAD_NAME)?;
    Some(running + ENDED_CPU_MICROS.load(Ordering::Relaxed) as f64 / 1e6)
}

/// Starts a thread of the delay line, named [`THREAD_NAME`], that leaves its CPU time in
/// [`ENDED_CPU_MICROS`] as it ends.
fn spawn(work: impl FnOnce() + Send + 'static) -> io::Result<()> {
    let counted = move || {
        work();
        if let Some(seconds) = crate::cpu::this_thread_cpu_seconds() {
            ENDED_CPU_MICROS.fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
        }
    };
    thread::Builder::new()
        .name(THREAD_NAME.to_owned())
        .spawn(counted)
        .map(drop)
}

/// Forwards what `from` sends to `to`, each chunk `delay` after it arrived, on one thread: it
/// waits for whichever comes first, the next chunk or the next chunk's due time, so a chunk is
/// stamped as it arrives even while earlier ones wait. (A reader and a writer thread with a
/// channel between them cost three wake-ups a chunk; this costs two.)
fn delay_line(mut from: TcpStream, mut to: TcpStream, delay: Duration) -> io::Result<()> {
    spawn(move || {
        let mut waiting = VecDeque::<(Instant, Vec<u8>)>::new();
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match wait_readable(&from, waiting.front().map(|(due, _)| *due)) {
                Ok(false) => {}
                Ok(true) => match from.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => waiting.push_back((Instant::now() + delay, buffer[..n].to_vec())),
                },
                Err(_) => break,
            }
            if write_due(&mut to, &mut waiting, Instant::now()).is_err() {
                return;
            }
        }
        // The peer closed: what it sent still arrives on time, then the end is passed on.
        for (due, chunk) in waiting {
            thread::sleep(due.saturating_duration_since(Instant::now()));
            if to.write_all(&chunk).is_err() {
                return;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    })
}

/// Waits until `socket` has something to read (true) or until `until` (false), at the
/// nanosecond: `poll` with a `timespec`, where a millisecond timeout would double a half
/// millisecond's delay. A signal ends the wait early (false).
fn wait_readable(socket: &TcpStream, until: Option<Instant>) -> io::Result<bool> {
    let timeout = until.map(|until| {
        let left = until.saturating_duration_since(Instant::now());
        Timespec {
            tv_sec: left.as_secs().try_into().unwrap_or(i64::MAX),
            tv_nsec: left.subsec_nanos().into(),
        }
    });
    let mut fds = [PollFd::new(socket, PollFlags::IN)];
    match event::poll(&mut fds, timeout.as_ref()) {
        Ok(_) => Ok(!fds[0].revents().is_empty()),
        Err(Errno::INTR) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// Writes every chunk of `waiting` due by `now`, in order.
fn write_due(
    to: &mut TcpStream,
    waiting: &mut VecDeque<(Instant, Vec<u8>)>,
    now: Instant,
) -> io::Result<()> {
    while waiting.front().is_some_and(|(due, _)| *due <= now) {
        if let Some((_, chunk)) = waiting.pop_front() {
            to.write_all(&chunk)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_is_found_after_the_user_and_before_the_path() {
        let (authority, rewrite) =
            split_authority("postgres://u:p@db.example:6543/shop?sslmode=disable").unwrap();
        assert_eq!(authority, "db.example:6543");
        assert_eq!(
            rewrite("127.0.0.1:9"),
            "postgres://u:p@127.0.0.1:9/shop?sslmode=disable"
        );
        let (authority, rewrite) = split_authority("postgres://localhost/db").unwrap();
        assert_eq!(authority, "localhost");
        assert_eq!(rewrite("127.0.0.1:9"), "postgres://127.0.0.1:9/db");
    }

    #[test]
    fn a_url_without_a_host_is_refused() {
        assert!(split_authority("postgres:///db").is_none());
        assert!(split_authority("not a url").is_none());
    }

    /// A client connected through a delay line of `round_trip` to a server that echoes.
    fn echoed_through(round_trip: Duration) -> (LatencyProxy, TcpStream) {
        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let echo_addr = echo.local_addr().unwrap();
        thread::spawn(move || {
            let (mut peer, _) = echo.accept().unwrap();
            let mut buffer = [0u8; 1024];
            while let Ok(n) = peer.read(&mut buffer) {
                if n == 0 || peer.write_all(&buffer[..n]).is_err() {
                    return;
                }
            }
        });
        let url = format!("postgres://u:p@{echo_addr}/db");
        let (proxy, through) = LatencyProxy::start(&url, round_trip).unwrap();
        let (authority, _) = split_authority(&through).unwrap();
        (proxy, TcpStream::connect(authority).unwrap())
    }

    /// Reads from `client` until `wanted` bytes came back.
    fn read_exactly(client: &mut TcpStream, wanted: usize) -> Vec<u8> {
        let mut received = Vec::new();
        let mut buffer = [0u8; 16];
        while received.len() < wanted {
            let n = client.read(&mut buffer).unwrap();
            assert!(n > 0, "the proxy closed early");
            received.extend_from_slice(&buffer[..n]);
        }
        received
    }

    #[test]
    fn bytes_arrive_in_order_after_the_delay() {
        let (_proxy, mut client) = echoed_through(Duration::from_millis(20));
        let sent = Instant::now();
        client.write_all(b"one").unwrap();
        client.write_all(b"two").unwrap();
        assert_eq!(read_exactly(&mut client, 6), b"onetwo");
        assert!(
            sent.elapsed() >= Duration::from_millis(20),
            "no delay applied"
        );
        // The accepting thread and one a direction, named so that their CPU is read apart.
        let named = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
            .filter(|name| name.trim_end() == THREAD_NAME)
            .count();
        assert!(named >= 3, "{named} threads named {THREAD_NAME}");
    }

    #[test]
    fn a_chunk_sent_while_another_waits_is_delayed_from_its_own_sending() {
        let (_proxy, mut client) = echoed_through(Duration::from_millis(40));
        client.write_all(b"one").unwrap();
        thread::sleep(Duration::from_millis(15));
        let second_sent = Instant::now();
        client.write_all(b"two").unwrap();
        assert_eq!(read_exactly(&mut client, 3), b"one");
        assert_eq!(read_exactly(&mut client, 3), b"two");
        assert!(
            second_sent.elapsed() >= Duration::from_millis(40),
            "the second chunk took the first one's due time"
        );
    }

    #[test]
    fn what_was_sent_before_a_close_still_arrives() {
        let (_proxy, mut client) = echoed_through(Duration::from_millis(20));
        client.write_all(b"last words").unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let mut received = Vec::new();
        client.read_to_end(&mut received).unwrap();
        assert_eq!(received, b"last words");
    }
}
