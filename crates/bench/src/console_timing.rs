//! `--time-console`: how long each operations-console page and admin list takes to answer on
//! the database as the run left it (with `--stored-orders N`, at that size), asked over HTTP by a signed-in
//! operator, several times each. A page that grows with the data shows here first.

use std::time::{Duration, Instant};

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::Value;

use super::BenchError;

/// Times each page is asked; the median and the slowest are reported.
const ROUNDS: usize = 7;

/// One page's answer times.
#[derive(Debug, Clone)]
pub struct PageTime {
    /// What was asked, as a path.
    pub path: String,
    /// The median answer time.
    pub median: Duration,
    /// The slowest answer time.
    pub slowest: Duration,
    /// The status of the last answer (a page that fails is reported, not timed as fast).
    pub status: u16,
}

/// Signs in to the console at `base` with `token` and times every page and admin list.
pub async fn time_console(base: &str, token: &str) -> Result<Vec<PageTime>, BenchError> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| BenchError::Setup(format!("http client: {e}")))?;
    let cookie = sign_in(&client, base, token).await?;
    let sample = sample_order(&client, base, token).await?;
    let mut times = Vec::new();
    for path in pages(&sample) {
        let api = path.starts_with("/api/");
        times.push(time_one(&client, base, &path, api.then_some(token), &cookie).await?);
    }
    Ok(times)
}

/// An order to open, search for and page after: the newest one.
struct Sample {
    id: String,
    number: String,
    email: String,
}

fn pages(sample: &Sample) -> Vec<String> {
    vec![
        "/admin".into(),
        "/admin/orders".into(),
        "/admin/orders?status=Confirmed".into(),
        format!("/admin/orders?q={}", sample.email.replace('@', "%40")),
        format!("/admin/orders?q={}", sample.number),
        format!("/admin/orders/{}", sample.id),
        "/admin/checkout".into(),
        "/admin/checkouts?state=Confirmed".into(),
        "/admin/checkouts?stuck=true".into(),
        "/admin/dead-letters".into(),
        "/admin/catalog".into(),
        "/api/ordering/dashboard".into(),
        "/api/ordering/orders/search?status=Confirmed".into(),
        "/api/ordering/orders?page=5000".into(),
        "/api/ordering/checkouts?state=StockReserved".into(),
        "/api/ordering/checkouts/census".into(),
        "/api/messaging/dead-letters/groups".into(),
    ]
}

async fn sign_in(client: &reqwest::Client, base: &str, token: &str) -> Result<String, BenchError> {
    let answer = client
        .post(format!("{base}/admin/sign-in"))
        .header("origin", base)
        .form(&[("token", token), ("next", "/admin")])
        .send()
        .await
        .map_err(|e| BenchError::Setup(format!("console sign-in: {e}")))?;
    let signed_in = answer.headers().contains_key(LOCATION);
    let cookie = answer
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with("mc_console="))
        .and_then(|value| value.split(';').next())
        .map(str::to_owned);
    match cookie {
        Some(cookie) if signed_in => Ok(cookie),
        _ => Err(BenchError::Setup(format!(
            "console sign-in refused ({})",
            answer.status()
        ))),
    }
}

async fn sample_order(
    client: &reqwest::Client,
    base: &str,
    token: &str,
) -> Result<Sample, BenchError> {
    let get = |path: String| async move {
        client
            .get(format!("{base}{path}"))
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| BenchError::Setup(format!("{path}: {e}")))?
            .json::<Value>()
            .await
            .map_err(|e| BenchError::Setup(format!("{path}: {e}")))
    };
    let page = get("/api/ordering/orders?pageSize=1".into()).await?;
    let first = &page["items"][0];
    let (Some(id), Some(number)) = (first["id"].as_str(), first["orderNumber"].as_str()) else {
        return Err(BenchError::Setup(
            "no order to time the console with".into(),
        ));
    };
    let order = get(format!("/api/ordering/orders/{id}")).await?;
    Ok(Sample {
        id: id.to_owned(),
        number: number.to_owned(),
        email: order["buyerEmail"].as_str().unwrap_or_default().to_owned(),
    })
}

async fn time_one(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    token: Option<&str>,
    cookie: &str,
) -> Result<PageTime, BenchError> {
    let mut took = Vec::with_capacity(ROUNDS);
    let mut status = 0;
    for _ in 0..ROUNDS {
        let mut request = client.get(format!("{base}{path}")).header(COOKIE, cookie);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let started = Instant::now();
        let answer = request
            .send()
            .await
            .map_err(|e| BenchError::Setup(format!("{path}: {e}")))?;
        status = answer.status().as_u16();
        answer
            .bytes()
            .await
            .map_err(|e| BenchError::Setup(format!("{path}: {e}")))?;
        took.push(started.elapsed());
    }
    took.sort();
    Ok(PageTime {
        path: path.to_owned(),
        median: took[ROUNDS / 2],
        slowest: took[ROUNDS - 1],
        status,
    })
}
