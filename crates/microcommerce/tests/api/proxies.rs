//! Behind a real reverse proxy (nginx, started by each test): with the proxy trusted, every
//! client keeps its own write rate and its own share of unpaid checkouts, and an address a
//! client writes itself changes nothing. The clients are told apart by the loopback address
//! their connections come from (127.0.0.2, 127.0.0.3, …); nginx reaches the app from
//! 127.0.0.1, the one trusted proxy. Without nginx a local run says SKIPPED; CI fails instead.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::process::{Command, Stdio};

use microcommerce_service::config::{Config, ForwardedHeader, Limits, TrustedProxies};

use crate::helpers::{
    Client, KillOnDrop, TestApp, checkout_request, find_program, spawn_app_with,
    spawn_on_free_port, stocked_product,
};

/// nginx in front of one app, as a typical deployment puts it: it appends the client's
/// address to `X-Forwarded-For`.
struct Nginx {
    _process: KillOnDrop,
    /// `http://127.0.0.1:PORT` of the proxy.
    base: String,
    _dir: tempfile::TempDir,
}

/// nginx's configuration: one process in the foreground, every file in `dir`.
fn nginx_conf(dir: &std::path::Path, port: u16, upstream: SocketAddr) -> String {
    let dir = dir.display();
    format!(
        "daemon off;\nmaster_process off;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log warn;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n\
           fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n\
           server {{\n    listen 127.0.0.1:{port};\n    location / {{\n\
               proxy_pass http://{upstream};\n\
               proxy_set_header Host $host;\n\
               proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
         }}\n  }}\n}}\n"
    )
}

impl Nginx {
    /// nginx proxying to `app`, or `None` (after saying SKIPPED) where it is not installed.
    async fn before(app: &TestApp) -> Option<Nginx> {
        let found = find_program("nginx", &["/usr/sbin/nginx"])
            .ok_or_else(|| "nginx is not installed (apt-get install nginx)".to_owned());
        let program = testkit::required("nginx", found)?;
        let upstream: SocketAddr = app
            .base
            .trim_start_matches("http://")
            .parse()
            .expect("address");
        let dir = tempfile::tempdir().expect("temporary directory");
        let (process, port) = spawn_on_free_port("nginx", |port| {
            let conf = dir.path().join("nginx.conf");
            std::fs::write(&conf, nginx_conf(dir.path(), port, upstream))?;
            Command::new(&program)
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(&conf)
                .arg("-e")
                .arg(dir.path().join("error.log"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        })
        .await;
        Some(Nginx {
            _process: process,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        })
    }

    /// A new buyer reaching the app through nginx from `source` (a loopback address).
    fn buyer_from(&self, source: [u8; 4]) -> Client {
        Client::at_from(&self.base, IpAddr::from(source))
    }
}

/// An app that trusts what 127.0.0.1 says about the client, with `limits`.
fn behind_nginx(limits: Limits) -> impl FnOnce(Config) -> Config {
    move |config| Config {
        limits,
        trusted_proxies: TrustedProxies {
            ranges: vec!["127.0.0.1/32".parse().expect("range")],
            header: ForwardedHeader::XForwardedFor,
        },
        ..config
    }
}

/// One writing request per second, two at once: the third write in a row is refused.
fn one_write_per_second() -> Limits {
    Limits {
        writes_per_second: NonZeroU32::new(1),
        write_burst: NonZeroU32::new(2).expect("two"),
        unpaid_per_buyer: None,
        unpaid_per_address: None,
        ..Limits::default()
    }
}

/// Writes from `client` until the rate refuses one (at most ten); the refusal's status.
async fn write_until_refused(client: &Client, forged: Option<&str>) -> u16 {
    for _ in 0..10 {
        let mut request = client
            .http
            .post(format!("{}/api/cart/items", client.base()))
            .json(&serde_json::json!({}));
        if let Some(address) = forged {
            request = request.header("x-forwarded-for", address);
        }
        let status = request.send().await.expect("answered").status().as_u16();
        if status == 429 {
            return status;
        }
    }
    panic!("ten writes at once never met a rate of one per second with a burst of two");
}

/// One write from `client` naming `forged` as its address; its status.
async fn one_write(client: &Client, forged: &str) -> u16 {
    client
        .http
        .post(format!("{}/api/cart/items", client.base()))
        .header("x-forwarded-for", forged)
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("answered")
        .status()
        .as_u16()
}

testkit::backend_tests! {
async fn behind_a_trusted_proxy_each_client_has_its_own_rate_and_cannot_forge_another(backend) {
    let app = spawn_app_with(backend, behind_nginx(one_write_per_second())).await;
    let Some(nginx) = Nginx::before(&app).await else { return };
    let first = nginx.buyer_from([127, 0, 0, 2]);
    assert_eq!(write_until_refused(&first, None).await, 429);
    // nginx appends the real client after the forged address, so the forged one is ignored.
    assert_eq!(one_write(&first, "198.51.100.7").await, 429, "a forged address is a new budget");
    let second = nginx.buyer_from([127, 0, 0, 3]);
    assert_ne!(one_write(&second, "").await, 429, "another client behind the proxy has its own rate");
}
}

testkit::backend_tests! {
async fn an_untrusted_peer_naming_another_address_keeps_its_own(backend) {
    let app = spawn_app_with(backend, behind_nginx(one_write_per_second())).await;
    let direct = Client::at_from(&app.base, IpAddr::from([127, 0, 0, 4]));
    assert_eq!(write_until_refused(&direct, Some("198.51.100.8")).await, 429);
    assert_eq!(one_write(&direct, "198.51.100.9").await, 429, "the header from an untrusted peer is ignored");
}
}

testkit::backend_tests! {
async fn behind_a_trusted_proxy_unpaid_checkouts_are_counted_per_client(backend) {
    let limits = Limits {
        unpaid_per_address: NonZeroU32::new(2),
        ..Limits::off()
    };
    let app = spawn_app_with(backend, behind_nginx(limits)).await;
    let Some(nginx) = Nginx::before(&app).await else { return };
    let product = stocked_product(&app, "Lamp", 100).await;
    let checkout = checkout_request(&product, 1);
    for _ in 0..2 {
        let placed = nginx.buyer_from([127, 0, 0, 2]).post("/api/ordering/checkout", checkout.clone()).await;
        assert_eq!(placed.status, 201, "{:?}", placed.body);
    }
    let hoarder = nginx.buyer_from([127, 0, 0, 2]).post("/api/ordering/checkout", checkout.clone()).await;
    assert_eq!(hoarder.status, 429, "{:?}", hoarder.body);
    assert_eq!(hoarder.body["type"], "urn:microcommerce:problem:too-many-unpaid-checkouts");
    let neighbour = nginx.buyer_from([127, 0, 0, 3]).post("/api/ordering/checkout", checkout).await;
    assert_eq!(neighbour.status, 201, "another client behind the proxy has its own share: {:?}", neighbour.body);
    let placed_from: Vec<String> = sqlx::query_scalar("SELECT placed_from FROM orders ORDER BY placed_from")
        .fetch_all(app.state.db.reader())
        .await
        .expect("orders read");
    assert_eq!(placed_from, ["127.0.0.2", "127.0.0.2", "127.0.0.3"]);
}
}
