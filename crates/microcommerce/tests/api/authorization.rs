//! The authorization matrix: every route of the OpenAPI document the app serves, against five
//! callers (no cookie, buyer A, buyer B, the admin token, a console session), each cell a real
//! request whose answer must be the one the route's declared rule gives. A route the table does
//! not decide, or a decision whose route is gone, fails the test by name, so a new route cannot
//! ship without someone saying who may call it.
//!
//! A cell is judged by the class of its answer, not its exact status: a 401 (or a 403) is a
//! refusal; so is a 404 where the route hides what is not the caller's, which is why those routes
//! get a fixture of buyer A's that exists (a new one per route, so that what one route changes
//! cannot decide another's cells); anything else (200, 400 for the minimal body, 409, ...) means
//! authorization let the request through.

use std::collections::BTreeSet;
use std::time::Instant;

use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, Client, TestApp, checkout_request, insert_product, spawn_app};

/// Who may call a route, as its handler decides (read from the handler, not guessed from its
/// name).
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// Everyone, with or without a cookie or a token.
    Public,
    /// Every caller, each on their own things: a caller without a cookie is given a new buyer.
    Own,
    /// Buyer A's cart line: only A; anyone else, the admin token too, is told 404.
    Owner,
    /// Buyer A's order: A or an admin (the token or a console session); anyone else is told
    /// 404.
    OwnerOrAdmin,
    /// A draft product: only an admin (the token or a console session) sees it; anyone else is
    /// told 404.
    AdminSees,
    /// The admin API (the `Admin` extractor): the token or a console session; 401 otherwise.
    Admin,
}

/// One declared decision: a route of the document and who may call it.
struct Decision {
    /// The HTTP method, upper case.
    method: &'static str,
    /// The path template as the document writes it.
    path: &'static str,
    /// Who may call it.
    rule: Rule,
    /// A body the route parses, where its ownership check comes after the parsing (a 400 for `{}`
    /// would answer before the check could refuse); `None` sends `{}` to POST, PUT and PATCH.
    body: Option<&'static str>,
}

/// A decision with the minimal body.
const fn decide(method: &'static str, path: &'static str, rule: Rule) -> Decision {
    Decision {
        method,
        path,
        rule,
        body: None,
    }
}

impl Decision {
    /// The same decision, sending `body`.
    const fn with_body(self, body: &'static str) -> Decision {
        Decision {
            body: Some(body),
            ..self
        }
    }
}

use Rule::{Admin, AdminSees, Own, Owner, OwnerOrAdmin, Public};

/// Every route's decision: the one place that says who may call what.
const DECISIONS: &[Decision] = &[
    decide("GET", "/api/cart", Own),
    decide("GET", "/api/cart/count", Own),
    decide("POST", "/api/cart/items", Own),
    decide("DELETE", "/api/cart/items/{itemId}", Owner),
    decide("PUT", "/api/cart/items/{itemId}", Owner).with_body(r#"{"quantity": 2}"#),
    decide("GET", "/api/catalog/categories", Public),
    decide("POST", "/api/catalog/categories", Admin),
    decide("GET", "/api/catalog/categories/{id}", Public),
    decide("PUT", "/api/catalog/categories/{id}", Admin),
    decide("GET", "/api/catalog/products", Public),
    decide("POST", "/api/catalog/products", Admin),
    decide("GET", "/api/catalog/products/{id}", AdminSees),
    decide("PUT", "/api/catalog/products/{id}", Admin),
    decide("PATCH", "/api/catalog/products/{id}/status", Admin),
    decide("GET", "/api/inventory/stock", Public),
    decide("GET", "/api/inventory/stock/{productId}", Public),
    decide("POST", "/api/inventory/stock/{productId}/adjust", Admin),
    decide("GET", "/api/inventory/stock/{productId}/adjustments", Admin),
    decide("DELETE", "/api/messaging/dead-letters", Admin),
    decide("GET", "/api/messaging/dead-letters", Admin),
    decide("GET", "/api/messaging/dead-letters/groups", Admin),
    decide("GET", "/api/messaging/dead-letters/{id}", Admin),
    decide(
        "POST",
        "/api/messaging/dead-letters/{id}/purge-group",
        Admin,
    ),
    decide("POST", "/api/messaging/dead-letters/{id}/retry", Admin),
    decide(
        "POST",
        "/api/messaging/dead-letters/{id}/retry-group",
        Admin,
    ),
    decide("GET", "/api/openapi.json", Public),
    decide("POST", "/api/ordering/checkout", Own),
    decide("GET", "/api/ordering/checkouts", Admin),
    decide("GET", "/api/ordering/checkouts/census", Admin),
    decide("GET", "/api/ordering/dashboard", Admin),
    decide("GET", "/api/ordering/orders", Admin),
    decide("GET", "/api/ordering/orders/my", Own),
    decide("GET", "/api/ordering/orders/search", Admin),
    decide("GET", "/api/ordering/orders/{id}", OwnerOrAdmin),
    decide("POST", "/api/ordering/orders/{id}/cancel", Admin),
    decide("GET", "/api/ordering/orders/{id}/checkout", OwnerOrAdmin),
    decide("POST", "/api/ordering/orders/{id}/pay", OwnerOrAdmin)
        .with_body(r#"{"shouldSucceed": true}"#),
    decide("PATCH", "/api/ordering/orders/{id}/status", Admin),
    decide("GET", "/health/live", Public),
    decide("GET", "/health/ready", Public),
    decide("GET", "/metrics", Admin),
];

/// The callers of every route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Identity {
    /// No cookie and no token.
    Anonymous,
    /// The buyer who owns the fixtures.
    BuyerA,
    /// Another buyer.
    BuyerB,
    /// The admin bearer token (and a buyer cookie of its own).
    AdminToken,
    /// A console session cookie from signing in at `/admin/sign-in`, sent as a same-site tool
    /// sends it.
    AdminSession,
}

/// Every identity: the columns of the matrix.
const IDENTITIES: [Identity; 5] = [
    Identity::Anonymous,
    Identity::BuyerA,
    Identity::BuyerB,
    Identity::AdminToken,
    Identity::AdminSession,
];

/// The class of answer a cell expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Let through: neither 401 nor 403 (a 404 may be the resource's own absence).
    Through,
    /// Let through to the caller's fixture, which exists: neither 401, 403 nor 404.
    Seen,
    /// Refused for want of credentials: 401.
    Unauthorized,
    /// Refused as if the resource did not exist: 404.
    Hidden,
}

impl Rule {
    /// What `who` is answered.
    fn expects(self, who: Identity) -> Answer {
        use Identity::{AdminSession, AdminToken, BuyerA};
        match (self, who) {
            (Public | Own, _) => Answer::Through,
            (Owner, BuyerA)
            | (OwnerOrAdmin, BuyerA | AdminToken | AdminSession)
            | (AdminSees, AdminToken | AdminSession) => Answer::Seen,
            (Owner | OwnerOrAdmin | AdminSees, _) => Answer::Hidden,
            (Admin, AdminToken | AdminSession) => Answer::Through,
            (Admin, _) => Answer::Unauthorized,
        }
    }
}

impl Answer {
    /// True when `status` is of this class.
    fn admits(self, status: u16) -> bool {
        let through = status != 401 && status != 403;
        match self {
            Answer::Through => through,
            Answer::Seen => through && status != 404,
            Answer::Unauthorized => status == 401,
            Answer::Hidden => status == 404,
        }
    }

    /// True for refusals, which change nothing and so run before the cells let through.
    fn refuses(self) -> bool {
        matches!(self, Answer::Unauthorized | Answer::Hidden)
    }
}

/// A route of the served document: its method, template and path parameters.
#[derive(Debug)]
struct Route {
    /// Upper case.
    method: String,
    /// As the document writes it, `{name}` for each parameter.
    path: String,
    /// Each path parameter's name and type (its schema's name, or its `format`/`type`).
    params: Vec<(String, String)>,
}

impl Route {
    /// The route's decision, if the table has one.
    fn decision(&self) -> Option<&'static Decision> {
        DECISIONS
            .iter()
            .find(|d| d.method == self.method && d.path == self.path)
    }
}

/// The routes of the OpenAPI document the app serves, as it serves it.
async fn served_routes(app: &TestApp) -> Vec<Route> {
    let document = app.buyer().get("/api/openapi.json").await;
    assert_eq!(document.status, 200, "the document is served");
    let paths = document.body["paths"].as_object().expect("paths").clone();
    let methods = ["get", "put", "post", "delete", "patch", "head", "options"];
    let mut routes = Vec::new();
    for (path, item) in paths {
        for method in methods.iter().filter(|m| item.get(**m).is_some()) {
            routes.push(Route {
                method: method.to_uppercase(),
                path: path.clone(),
                params: path_params(&item[*method]),
            });
        }
    }
    routes
}

/// The path parameters of an operation: name and type.
fn path_params(operation: &Value) -> Vec<(String, String)> {
    let params = operation["parameters"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    params
        .iter()
        .filter(|p| p["in"] == "path")
        .map(|p| {
            let schema = &p["schema"];
            let named = schema["$ref"].as_str().and_then(|r| r.rsplit('/').next());
            let kind = named
                .or(schema["format"].as_str())
                .or(schema["type"].as_str());
            (
                p["name"].as_str().unwrap_or_default().to_owned(),
                kind.unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Routes without a decision and decisions without a route, each as `METHOD path`.
fn undecided_and_stale(routes: &[Route]) -> (Vec<String>, Vec<String>) {
    let served: BTreeSet<String> = routes
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    let declared: BTreeSet<String> = DECISIONS
        .iter()
        .map(|d| format!("{} {}", d.method, d.path))
        .collect();
    assert_eq!(declared.len(), DECISIONS.len(), "a route is decided twice");
    let undecided = served.difference(&declared).cloned().collect();
    let stale = declared.difference(&served).cloned().collect();
    (undecided, stale)
}

/// One client per identity; the anonymous one is made anew for every request.
struct Callers {
    /// Where the anonymous clients send their requests.
    base: String,
    /// The owner of the fixtures.
    buyer_a: Client,
    buyer_b: Client,
    admin_token: Client,
    admin_session: Client,
}

impl Callers {
    /// Buyers A and B, the token's client, and a client that signed in to the console.
    async fn new(app: &TestApp) -> Callers {
        Callers {
            base: app.base.clone(),
            buyer_a: app.buyer(),
            buyer_b: app.buyer(),
            admin_token: app.admin(),
            admin_session: signed_in(app).await,
        }
    }

    /// The client that calls as `who`.
    fn client(&self, who: Identity) -> Client {
        match who {
            Identity::Anonymous => Client::at(&self.base),
            Identity::BuyerA => self.buyer_a.clone(),
            Identity::BuyerB => self.buyer_b.clone(),
            Identity::AdminToken => self.admin_token.clone(),
            Identity::AdminSession => self.admin_session.clone(),
        }
    }
}

/// A client that signed in to the console with the admin token and keeps only its cookie.
async fn signed_in(app: &TestApp) -> Client {
    let client = app.buyer();
    let signed_in = client
        .http
        .post(format!("{}/admin/sign-in", app.base))
        .header("origin", &app.base)
        .form(&[("token", ADMIN_TOKEN), ("next", "/admin")])
        .send()
        .await
        .expect("answered");
    assert!(
        signed_in.status().is_success(),
        "signed in: {}",
        signed_in.status()
    );
    assert!(signed_in.url().path() == "/admin", "to the console");
    client
}

/// What the routes' ids stand for: the shared fixtures, and buyer A's new ones made per route.
struct Fixtures {
    /// A seeded category.
    category: String,
    /// A draft product, which only admins may see.
    draft: String,
    /// A published, stocked product for buyer A's carts and orders.
    for_sale: String,
}

impl Fixtures {
    /// The shared fixtures: a seeded category, a new draft and a new product for sale.
    async fn new(app: &TestApp) -> Fixtures {
        let categories = app.buyer().get("/api/catalog/categories").await;
        let category = categories.body[0]["id"]
            .as_str()
            .expect("a seeded category")
            .to_owned();
        let draft = app
            .admin()
            .post(
                "/api/catalog/products",
                json!({ "name": "Draft", "description": "", "price": 10, "categoryId": category }),
            )
            .await;
        assert_eq!(draft.status, 201, "{:?}", draft.body);
        Fixtures {
            category,
            draft: draft.body["id"].as_str().expect("product id").to_owned(),
            for_sale: insert_product(app, 1000, 100).await.to_string(),
        }
    }

    /// `route`'s path with an id of each parameter's type: one that exists, and buyer A's.
    async fn path_of(&self, route: &Route, buyer_a: &Client) -> String {
        let mut path = route.path.clone();
        for (name, kind) in &route.params {
            let id = match kind.as_str() {
                "CartItemId" => self.cart_line(buyer_a).await,
                "OrderId" => self.order(buyer_a).await,
                "CategoryId" => self.category.clone(),
                "ProductId" => self.draft.clone(),
                // Only dead letters have integer ids; there are none, so an admin is told 404,
                // which is not a refusal.
                "int64" => "1".to_owned(),
                other => panic!("no fixture for {name} ({other}) of {}", route.path),
            };
            path = path.replace(&format!("{{{name}}}"), &id);
        }
        path
    }

    /// A line of buyer A's cart.
    async fn cart_line(&self, buyer_a: &Client) -> String {
        let body = json!({ "productId": self.for_sale, "quantity": 1 });
        let added = buyer_a.post("/api/cart/items", body).await;
        assert_eq!(added.status, 200, "{:?}", added.body);
        added.body["itemId"].as_str().expect("item id").to_owned()
    }

    /// A new order of buyer A whose checkout has started (so that its checkout view exists).
    async fn order(&self, buyer_a: &Client) -> String {
        let request = checkout_request(&self.for_sale, 1);
        let placed = buyer_a
            .preferring("wait=30")
            .post("/api/ordering/checkout", request)
            .await;
        assert_eq!(placed.status, 201, "{:?}", placed.body);
        assert_ne!(
            placed.body["status"], "Submitted",
            "the checkout has moved the order on"
        );
        placed.body["orderId"]
            .as_str()
            .expect("order id")
            .to_owned()
    }
}

/// Sends `route` as every identity, refusals first; returns a line for each cell answered
/// against its decision.
async fn check_route(route: &Route, callers: &Callers, fixtures: &Fixtures) -> Vec<String> {
    let decision = route.decision().expect("checked before");
    let path = fixtures.path_of(route, &callers.buyer_a).await;
    let body = match (decision.body, route.method.as_str()) {
        (Some(body), _) => Some(serde_json::from_str(body).expect("a JSON body")),
        (None, "POST" | "PUT" | "PATCH") => Some(json!({})),
        (None, _) => None,
    };
    let mut cells = IDENTITIES.map(|who| (who, decision.rule.expects(who)));
    cells.sort_by_key(|(_, expected)| !expected.refuses());
    let mut wrong = Vec::new();
    for (who, expected) in cells {
        let reply = callers
            .client(who)
            .send(&route.method, &path, body.clone())
            .await;
        if !expected.admits(reply.status) {
            wrong.push(format!(
                "{} {} as {who:?}: {:?} expects {expected:?}, answered {} to {path}: {}",
                route.method, route.path, decision.rule, reply.status, reply.body
            ));
        }
    }
    wrong
}

testkit::backend_tests! {
async fn every_route_answers_every_caller_as_its_decision_says(backend) {
    let started = Instant::now();
    let app = spawn_app(backend).await;
    let routes = served_routes(&app).await;
    let (undecided, stale) = undecided_and_stale(&routes);
    assert!(
        undecided.is_empty() && stale.is_empty(),
        "routes without a decision: {undecided:#?}\ndecisions without a route: {stale:#?}"
    );
    let callers = Callers::new(&app).await;
    let fixtures = Fixtures::new(&app).await;
    let mut wrong = Vec::new();
    for route in &routes {
        wrong.extend(check_route(route, &callers, &fixtures).await);
    }
    let cells = routes.len() * IDENTITIES.len();
    eprintln!(
        "authorization matrix on {backend:?}: {} routes × {} identities = {cells} cells, {:?}",
        routes.len(),
        IDENTITIES.len(),
        started.elapsed()
    );
    let against = wrong.join("\n");
    assert!(wrong.is_empty(), "{} of {cells} cells answered against their rule:\n{against}", wrong.len());
    app.stop().await;
}
}

#[test]
fn a_route_without_a_decision_and_a_decision_without_a_route_are_named() {
    let route = |method: &str, path: &str| Route {
        method: method.into(),
        path: path.into(),
        params: Vec::new(),
    };
    let mut routes: Vec<Route> = DECISIONS.iter().map(|d| route(d.method, d.path)).collect();
    routes.retain(|r| r.path != "/health/live");
    routes.push(route("DELETE", "/api/cart"));
    let (undecided, stale) = undecided_and_stale(&routes);
    assert_eq!(undecided, ["DELETE /api/cart"]);
    assert_eq!(stale, ["GET /health/live"]);
}
