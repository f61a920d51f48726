//! Throwaway PostgreSQL servers for tests, started from the system's binaries (`initdb`,
//! `postgres` on the PATH or under `/usr/lib/postgresql/*/bin`), with no Docker.
//!
//! Each test process shares one server ([`shared`]) and gives every test its own database;
//! tests that stop and start the server get a dedicated one ([`Server::start`]). Servers listen
//! on 127.0.0.1 only, run without fsync (tests need no durability across power loss), and are
//! stopped and deleted by a watchdog once the test process exits, however it exits.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use sqlx::Connection;

/// A running PostgreSQL server owned by the tests.
pub struct Server {
    port: u16,
    root: PathBuf,
    bin: PathBuf,
    /// When the tests run as root, the server runs as this user (PostgreSQL refuses root).
    run_as: Option<&'static str>,
    child: Mutex<Option<Child>>,
}

static SHARED: OnceLock<Result<Server, String>> = OnceLock::new();

/// The server this test process shares, started on first use; `Err` says why none can run.
pub fn shared() -> Result<&'static Server, String> {
    SHARED
        .get_or_init(Server::start)
        .as_ref()
        .map_err(Clone::clone)
}

impl Server {
    /// Initialises a cluster in a new temporary directory and starts it on a free port.
    pub fn start() -> Result<Server, String> {
        let bin =
            find_binaries().ok_or("no initdb/postgres found (install the postgresql package)")?;
        let run_as = running_as_root().then_some("postgres");
        let root = tempfile::Builder::new()
            .prefix("microcommerce-pg-")
            .tempdir()
            .map_err(|e| e.to_string())?
            .keep();
        if let Some(user) = run_as {
            run(Command::new("chown")
                .arg("-R")
                .arg(format!("{user}:{user}"))
                .arg(&root))?;
        }
        let data = root.join("data");
        let mut initdb = command(&bin, "initdb", run_as);
        initdb.arg("-D").arg(&data).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        run(&mut initdb)?;
        let server = Server {
            port: free_port()?,
            root,
            bin,
            run_as,
            child: Mutex::new(None),
        };
        server.launch()?;
        server.watch_parent();
        Ok(server)
    }

    /// Starts the server process on its port and waits until it accepts connections.
    fn launch(&self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("server.log"))
            .map_err(|e| e.to_string())?;
        let mut postgres = command(&self.bin, "postgres", self.run_as);
        postgres
            .arg("-D")
            .arg(self.root.join("data"))
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(&self.root)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
            .args(["-c", "max_connections=400", "-c", "shared_buffers=64MB"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        let child = postgres
            .spawn()
            .map_err(|e| format!("cannot start postgres: {e}"))?;
        *self.child.lock().expect("server lock") = Some(child);
        self.wait_until_ready()
    }

    fn wait_until_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = std::fs::read_to_string(self.root.join("server.log")).unwrap_or_default();
            let starts = log.matches("ready to accept connections").count();
            let stops = log.matches("database system is shut down").count();
            if starts > stops {
                return Ok(());
            }
            if let Some(child) = self.child.lock().expect("server lock").as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("postgres exited ({status}): {log}"));
            }
            if Instant::now() > deadline {
                return Err(format!("postgres did not start in time: {log}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server at once (fast shutdown: clients are disconnected), keeping its data.
    pub fn stop(&self) {
        if let Some(mut child) = self.child.lock().expect("server lock").take() {
            let _ = Command::new("kill")
                .arg("-INT")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }

    /// Starts a stopped server again on the same port with the same data.
    pub fn restart(&self) -> Result<(), String> {
        self.stop();
        self.launch()
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL to database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates a new, empty database and returns its URL.
    pub async fn fresh_database(&self) -> String {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .expect("connect to the test server");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create a test database");
        let _ = admin.close().await;
        self.url(&name)
    }

    /// Stops the server and deletes its files when this process exits, even by a panic that
    /// aborts or a kill, by a small shell loop that outlives it.
    fn watch_parent(&self) {
        let Some(pid) = self
            .child
            .lock()
            .expect("server lock")
            .as_ref()
            .map(Child::id)
        else {
            return;
        };
        let script = format!(
            "while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill -INT {pid} 2>/dev/null; \
             sleep 5; kill -9 {pid} 2>/dev/null; rm -rf '{root}'",
            parent = std::process::id(),
            root = self.root.display()
        );
        let _ = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn command(bin: &Path, program: &str, run_as: Option<&str>) -> Command {
    match run_as {
        Some(user) => {
            let mut command = Command::new("setpriv");
            command
                .arg(format!("--reuid={user}"))
                .arg(format!("--regid={user}"))
                .arg("--init-groups")
                .arg("--")
                .arg(bin.join(program));
            command
        }
        None => Command::new(bin.join(program)),
    }
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// The folder holding `initdb` and `postgres`: the PATH first, then Debian's versioned folders.
fn find_binaries() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| dirs.flatten().map(|d| d.path().join("bin")).collect())
        .unwrap_or_default();
    debian.sort();
    debian.reverse();
    on_path
        .into_iter()
        .chain(debian)
        .find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file())
        .map(|dir| {
            std::fs::canonicalize(dir.join("initdb"))
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf))
                .unwrap_or(dir)
        })
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}
