//! Throwaway PostgreSQL servers for tests, started from the system's binaries (`initdb`,
//! `postgres` on the PATH or under `/usr/lib/postgresql/*/bin`), with no Docker.
//!
//! Each test process shares one server ([`shared`]) and gives every test its own database;
//! tests that stop and start the server get a dedicated one ([`Server::start`]), and tests of
//! TLS one that also accepts TLS with certificates made for it ([`shared_tls`],
//! [`Certificates`]). Servers listen on 127.0.0.1 only, run without fsync (tests need no
//! durability across power loss), and are stopped and deleted by a watchdog once the test
//! process exits, however it exits.

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
    /// The certificates of a server that accepts TLS; `None` for a plain one.
    tls: Option<Certificates>,
    child: Mutex<Option<Child>>,
}

static SHARED: OnceLock<Result<Server, String>> = OnceLock::new();
static SHARED_TLS: OnceLock<Result<Server, String>> = OnceLock::new();

/// The server this test process shares, started on first use; `Err` says why none can run.
pub fn shared() -> Result<&'static Server, String> {
    SHARED
        .get_or_init(Server::start)
        .as_ref()
        .map_err(Clone::clone)
}

/// The server accepting TLS this test process shares, started on first use (see
/// [`Server::start_with_tls`]); `Err` says why none can run.
pub fn shared_tls() -> Result<&'static Server, String> {
    SHARED_TLS
        .get_or_init(Server::start_with_tls)
        .as_ref()
        .map_err(Clone::clone)
}

impl Server {
    /// Initialises a cluster in a new temporary directory and starts it on a free port.
    pub fn start() -> Result<Server, String> {
        Self::start_with(false)
    }

    /// Like [`Server::start`], but the server also accepts TLS (`ssl=on`; plain connections
    /// still work), with a certificate for `localhost` and 127.0.0.1 signed by a certificate
    /// authority made for it ([`Server::certificates`]). Needs the `openssl` binary.
    pub fn start_with_tls() -> Result<Server, String> {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Result<Server, String> {
        let bin =
            find_binaries().ok_or("no initdb/postgres found (install the postgresql package)")?;
        let run_as = running_as_root().then_some("postgres");
        let root = tempfile::Builder::new()
            .prefix("microcommerce-pg-")
            .tempdir()
            .map_err(|e| e.to_string())?
            .keep();
        let tls = if tls {
            let made = Certificates::generate(&root.join("tls"));
            Some(made.inspect_err(|_| {
                let _ = std::fs::remove_dir_all(&root);
            })?)
        } else {
            None
        };
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
        let mut server = Server {
            port: 0,
            root,
            bin,
            run_as,
            tls,
            child: Mutex::new(None),
        };
        server.launch_on_a_free_port()?;
        server.watch_parent();
        Ok(server)
    }

    /// Starts the server on a free port. A port found free by binding it and letting go may be
    /// taken by another process before the server binds it; then another is tried (five in
    /// all).
    fn launch_on_a_free_port(&mut self) -> Result<(), String> {
        let mut failure = String::new();
        for _ in 0..5 {
            self.port = free_port()?;
            match self.launch() {
                Ok(()) => return Ok(()),
                Err(error) if error.contains("Address already in use") => failure = error,
                Err(error) => return Err(error),
            }
        }
        Err(failure)
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
            .args(self.tls.iter().flat_map(Certificates::settings))
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

    /// The certificates of a server started with [`Server::start_with_tls`].
    pub fn certificates(&self) -> Option<&Certificates> {
        self.tls.as_ref()
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

/// A certificate authority made for the tests and a server certificate it signed, for
/// `localhost` and 127.0.0.1, made with the `openssl` binary and valid for two days.
#[derive(Debug, Clone)]
pub struct Certificates {
    /// The authority's certificate (PEM): what a client verifies the server against
    /// (`sslrootcert`).
    pub ca: PathBuf,
    /// The server's certificate (PEM), for `ssl_cert_file`.
    pub server_cert: PathBuf,
    /// The server's private key (PEM, mode 0600), for `ssl_key_file`.
    pub server_key: PathBuf,
}

impl Certificates {
    /// Makes a new authority and server certificate in `dir` (created if missing). Every
    /// file is readable by its owner only, as PostgreSQL requires of its key.
    pub fn generate(dir: &Path) -> Result<Self, String> {
        if Command::new("openssl").arg("version").output().is_err() {
            return Err("no openssl binary found (install the openssl package)".into());
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let file = |name: &str| dir.join(name);
        // A name of its own, so that another authority's certificate is unknown, not forged.
        let subject = format!(
            "/CN=microcommerce test CA {}",
            uuid::Uuid::new_v4().simple()
        );
        run(openssl(&["req", "-x509", "-nodes", "-days", "2"])
            .args(["-subj", &subject])
            .args(EC_KEY)
            .arg("-keyout")
            .arg(file("ca.key"))
            .arg("-out")
            .arg(file("ca.crt")))?;
        run(
            openssl(&["req", "-new", "-nodes", "-subj", "/CN=localhost"])
                .args(EC_KEY)
                .arg("-keyout")
                .arg(file("server.key"))
                .arg("-out")
                .arg(file("server.csr")),
        )?;
        std::fs::write(file("server.ext"), SERVER_EXTENSIONS).map_err(|e| e.to_string())?;
        let serial = format!("0x{}", uuid::Uuid::new_v4().simple());
        run(
            openssl(&["x509", "-req", "-days", "2", "-set_serial", &serial])
                .arg("-in")
                .arg(file("server.csr"))
                .arg("-CA")
                .arg(file("ca.crt"))
                .arg("-CAkey")
                .arg(file("ca.key"))
                .arg("-extfile")
                .arg(file("server.ext"))
                .arg("-out")
                .arg(file("server.crt")),
        )?;
        owner_only(dir)?;
        Ok(Self {
            ca: file("ca.crt"),
            server_cert: file("server.crt"),
            server_key: file("server.key"),
        })
    }

    /// The server settings (`-c` arguments) that turn TLS on with these files.
    fn settings(&self) -> [String; 6] {
        [
            "-c".into(),
            "ssl=on".into(),
            "-c".into(),
            format!("ssl_cert_file={}", self.server_cert.display()),
            "-c".into(),
            format!("ssl_key_file={}", self.server_key.display()),
        ]
    }
}

/// A P-256 key: quick to make, and every TLS stack in use takes it.
const EC_KEY: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

/// What makes the server certificate usable by a client that checks names (`verify-full`).
const SERVER_EXTENSIONS: &str = "subjectAltName=DNS:localhost,IP:127.0.0.1\n\
    basicConstraints=critical,CA:FALSE\n\
    extendedKeyUsage=serverAuth\n";

fn openssl(args: &[&str]) -> Command {
    let mut command = Command::new("openssl");
    command.args(args).stdin(Stdio::null());
    command
}

/// Makes every file of `dir` readable and writable by its owner only.
#[cfg(unix)]
fn owner_only(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// Elsewhere files get the folder's permissions; PostgreSQL checks its key's mode on Unix only.
#[cfg(not(unix))]
fn owner_only(_dir: &Path) -> Result<(), String> {
    Ok(())
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
