//! The storefront and the console in a real browser: headless Chromium driven over WebDriver by a
//! chromedriver
//! each test starts on a free port, against an app on SQLite. The tests act as a shopper does
//! (find by label or visible text, click, wait for text) and never sleep. Without Chromium or
//! chromedriver a local run prints SKIPPED; CI (`CI` set) fails instead.
//!
//! They save screenshots of the main pages under the test target's temporary directory
//! (`screenshots/`); the README shows copies of them from `docs/screenshots/`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use microcommerce_service::config::Config;

use crate::helpers::{
    ADMIN_TOKEN, Backend, KillOnDrop, TestApp, checkout_request, eventually, find_program,
    order_in, spawn_app, spawn_app_with, spawn_on_free_port, stocked_product,
};

/// Longest wait for anything to appear: generous, since the lead's benchmarks may share the
/// machine.
const PATIENCE: Duration = Duration::from_secs(30);

/// One browser at a time: each is a few processes, and the machine has two cores.
static ONE_AT_A_TIME: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// A headless Chromium session and the chromedriver that runs it.
struct Browser {
    client: Client,
    _driver: KillOnDrop,
    base: String,
    _turn: tokio::sync::SemaphorePermit<'static>,
}

/// A browser on `app`, or `None` (after saying SKIPPED) when Chromium or chromedriver is
/// missing here; in CI a missing browser fails the test.
async fn browser(app: &TestApp) -> Option<Browser> {
    let chromium = find_program(
        "chromium",
        &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
    );
    let driver = find_program("chromedriver", &["/usr/bin/chromedriver"]);
    let found = chromium.zip(driver).ok_or_else(|| {
        "chromium and chromedriver (apt-get install chromium chromium-driver)".to_owned()
    });
    let (chromium, driver) = testkit::required("a browser", found)?;
    let turn = ONE_AT_A_TIME.acquire().await.expect("semaphore open");
    let (driver, port) = spawn_on_free_port("chromedriver", |port| {
        Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    })
    .await;
    let client = session(&chromium, port).await;
    Some(Browser {
        client,
        _driver: driver,
        base: app.base.clone(),
        _turn: turn,
    })
}

/// A new headless session on the chromedriver at `port`, once it answers.
async fn session(chromium: &std::path::Path, port: u16) -> Client {
    let options = json!({
        "binary": chromium,
        "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,900", "--lang=en-US"],
    });
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("goog:chromeOptions".into(), options);
    let url = format!("http://127.0.0.1:{port}");
    eventually("chromedriver to start a session", PATIENCE, || {
        let (capabilities, url) = (capabilities.clone(), url.clone());
        async move {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            ClientBuilder::new(connector)
                .capabilities(capabilities)
                .connect(&url)
                .await
                .ok()
        }
    })
    .await
}

/// `//tag[normalize-space()="text"]`, for finding by what a person reads.
fn by_text(tag: &str, text: &str) -> String {
    format!("//{tag}[normalize-space()=\"{text}\"]")
}

impl Browser {
    async fn open(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        self.client.goto(&url).await.expect("page opens");
    }

    /// Waits for the element at `xpath` (bounded by [`PATIENCE`]).
    async fn wait_for(&self, xpath: &str) -> Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::XPath(xpath))
            .await
            .unwrap_or_else(|error| panic!("waiting for {xpath}: {error}"))
    }

    /// Waits until the page shows `text` somewhere in its main content.
    async fn wait_for_text(&self, text: &str) -> Element {
        self.wait_for(&format!(
            "//main//*[contains(normalize-space(.), \"{text}\")]"
        ))
        .await
    }

    async fn click_button(&self, text: &str) {
        self.click(&by_text("button", text)).await;
    }

    async fn click_link(&self, text: &str) {
        self.click(&by_text("a", text)).await;
    }

    /// Clicks the element at `xpath`, finding it again if the live order page replaced it
    /// between finding and clicking (a stale element), bounded by [`PATIENCE`].
    async fn click(&self, xpath: &str) {
        eventually(&format!("clicking {xpath}"), PATIENCE, || async {
            let element = self.wait_for(xpath).await;
            element.click().await.ok()
        })
        .await;
    }

    /// Types `value` into the field (an input or a text area) labelled `label`, replacing what
    /// it held.
    async fn fill(&self, label: &str, value: &str) {
        let xpath = format!(
            "//*[self::input or self::textarea][@id=//label[normalize-space()=\"{label}\"]/@for]"
        );
        let field = self.wait_for(&xpath).await;
        field.clear().await.expect("field cleared");
        field.send_keys(value).await.expect("field typed in");
    }

    /// Chooses the option reading `option` in the list labelled `label`.
    async fn choose(&self, label: &str, option: &str) {
        let xpath = format!("//select[@id=//label[normalize-space()=\"{label}\"]/@for]");
        let list = self.wait_for(&xpath).await;
        list.select_by_label(option).await.expect("option chosen");
    }

    /// Searches the catalog from the header and opens the product named `name`.
    async fn find_product(&self, word: &str, name: &str) {
        self.open("/").await;
        self.fill("Search products", word).await;
        self.click_button("Search").await;
        self.click_link(name).await;
        self.wait_for(&by_text("h1", name)).await;
    }

    /// Adds `quantity` of the product whose page is open; the cart page follows.
    async fn add_to_cart(&self, quantity: u32) {
        self.fill("Quantity", &quantity.to_string()).await;
        self.click_button("Add to cart").await;
        self.wait_for(&by_text("h1", "Your cart")).await;
    }

    /// Fills the checkout form with a valid address and `email`, and places the order.
    async fn check_out(&self, email: &str) {
        self.open("/checkout").await;
        self.fill("Email", email).await;
        self.fill("Full name", "Ada Lovelace").await;
        self.fill("Street and number", "12 Analytical Row").await;
        self.fill("City", "London").await;
        self.fill("State or region", "LDN").await;
        self.fill("Postal code", "N1 9GU").await;
        self.click_button("Place order").await;
    }

    /// Waits until the order page shows `status` (by the progress panel's data attribute).
    async fn wait_for_status(&self, status: &str) -> Element {
        self.wait_for(&format!(
            "//*[@id='order-status' and @data-status='{status}']"
        ))
        .await
    }

    /// The id of the product whose page is open, from the address bar.
    async fn product_on_page(&self) -> String {
        let url = self.client.current_url().await.expect("address");
        let id = url
            .path()
            .strip_prefix("/products/")
            .expect("a product page");
        id.to_owned()
    }

    async fn text_of(&self, css: &str) -> String {
        let element = self.client.find(Locator::Css(css)).await.expect("element");
        element.text().await.expect("text")
    }

    /// Saves the viewport as `name.png` at `width` pixels wide.
    async fn screenshot(&self, name: &str, width: u32) {
        self.client
            .set_window_size(width, 900)
            .await
            .expect("window resized");
        let png = self.client.screenshot().await.expect("screenshot taken");
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot folder");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("screenshot saved");
        self.client
            .set_window_size(1280, 900)
            .await
            .expect("window resized");
    }

    /// Ends the session, which quits Chromium; dropping the browser then stops chromedriver.
    async fn close(self) {
        self.client.clone().close().await.expect("session closed");
    }
}

/// `product`'s (on hand, reserved) as the inventory API reports them.
async fn stock_on_api(app: &TestApp, product: &str) -> (i64, i64) {
    let stock = app
        .buyer()
        .get(&format!("/api/inventory/stock/{product}"))
        .await;
    assert_eq!(stock.status, 200, "{:?}", stock.body);
    let on_hand = stock.body["quantityOnHand"].as_i64().expect("on hand");
    let reserved = stock.body["reservedQuantity"].as_i64().expect("reserved");
    (on_hand, reserved)
}

/// Waits until `product`'s stock on the API is `expected`.
async fn stock_becomes(app: &TestApp, product: &str, expected: (i64, i64)) {
    eventually("the stock to settle", PATIENCE, || async {
        (stock_on_api(app, product).await == expected).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_shopper_searches_buys_two_products_pays_and_sees_confirmed_without_reloading() {
    let app = spawn_app(Backend::Sqlite).await;
    let Some(browser) = browser(&app).await else {
        return;
    };
    browser.open("/").await;
    browser.wait_for(&by_text("h1", "All products")).await;
    browser.screenshot("home", 1280).await;
    browser.find_product("mug", "Ceramic Mug").await;
    browser.wait_for_text("In stock").await;
    let mug = browser.product_on_page().await;
    let mug_before = stock_on_api(&app, &mug).await;
    browser.screenshot("product", 1280).await;
    browser.screenshot("product-375", 375).await;
    browser.add_to_cart(2).await;
    browser.find_product("coffee", "Pour-Over Coffee Set").await;
    let coffee = browser.product_on_page().await;
    let coffee_before = stock_on_api(&app, &coffee).await;
    browser.add_to_cart(1).await;
    assert_eq!(browser.text_of("#cart-count").await, "3");
    browser.screenshot("cart", 1280).await;

    browser.check_out("ada@example.com").await;
    browser.wait_for_status("StockReserved").await;
    browser.wait_for_text("Time left to pay").await;
    let marker = "window.stillTheSamePage = true; return true;";
    browser
        .client
        .execute(marker, vec![])
        .await
        .expect("marked");
    browser.click_button("Pay").await;
    browser.wait_for_status("Confirmed").await;
    let same = browser
        .client
        .execute("return window.stillTheSamePage === true;", vec![])
        .await
        .expect("script ran");
    assert_eq!(same, json!(true), "the page reloaded");
    // The confirmed order took its items out of the cart; the header's count follows.
    browser
        .wait_for("//span[@id='cart-count' and normalize-space(.)='0']")
        .await;
    browser.screenshot("order-confirmed", 1280).await;

    stock_becomes(&app, &mug, (mug_before.0 - 2, 0)).await;
    stock_becomes(&app, &coffee, (coffee_before.0 - 1, 0)).await;
    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_declined_payment_shows_the_reason_and_the_stock_is_back() {
    let app = spawn_app(Backend::Sqlite).await;
    let lamp = stocked_product(&app, "Reading Lamp", 5).await;
    let Some(browser) = browser(&app).await else {
        return;
    };
    browser.find_product("lamp", "Reading Lamp").await;
    browser.add_to_cart(2).await;
    browser.check_out("ada@example.com").await;
    browser.wait_for_status("StockReserved").await;
    stock_becomes(&app, &lamp, (5, 2)).await;
    browser.click_button("Decline").await;
    browser.wait_for_status("Failed").await;
    browser.wait_for_text("Your payment was declined.").await;
    stock_becomes(&app, &lamp, (5, 0)).await;
    browser.click_link("Back to your cart").await;
    browser.wait_for(&by_text("a", "Reading Lamp")).await;
    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn ordering_more_than_is_in_stock_fails_naming_the_product() {
    let app = spawn_app(Backend::Sqlite).await;
    let vase = stocked_product(&app, "Glass Vase", 2).await;
    let Some(browser) = browser(&app).await else {
        return;
    };
    browser.find_product("vase", "Glass Vase").await;
    browser.add_to_cart(3).await;
    browser.check_out("ada@example.com").await;
    browser.wait_for_status("Failed").await;
    let reason = browser.text_of("#progress .reason").await;
    assert!(reason.contains("Out of stock"), "{reason}");
    assert!(reason.contains("Glass Vase"), "{reason}");
    stock_becomes(&app, &vase, (2, 0)).await;
    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_bad_email_on_the_checkout_form_is_explained_beside_the_field() {
    let app = spawn_app(Backend::Sqlite).await;
    stocked_product(&app, "Wool Scarf", 5).await;
    let Some(browser) = browser(&app).await else {
        return;
    };
    browser.find_product("scarf", "Wool Scarf").await;
    browser.add_to_cart(1).await;
    browser.check_out("not-an-email").await;
    let message = browser
        .wait_for("//input[@id='email']/following-sibling::p[@class='error']")
        .await;
    assert_eq!(
        message.text().await.expect("message"),
        "Must be a valid email address"
    );
    let email = browser
        .client
        .find(Locator::Id("email"))
        .await
        .expect("field");
    assert_eq!(
        email.attr("aria-describedby").await.expect("attribute"),
        Some("email-error".into())
    );
    assert_eq!(
        email.prop("value").await.expect("value"),
        Some("not-an-email".into())
    );
    browser.screenshot("checkout-errors", 1280).await;
    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_product_named_like_a_script_is_shown_as_text() {
    let app = spawn_app(Backend::Sqlite).await;
    let name = "<script>alert(1)</script>";
    let product = stocked_product(&app, name, 3).await;
    let Some(browser) = browser(&app).await else {
        return;
    };
    browser.open(&format!("/products/{product}")).await;
    let heading = browser.wait_for("//main//h1").await;
    assert_eq!(heading.text().await.expect("heading"), name);
    browser.open("/?q=script").await;
    browser.wait_for(&by_text("span", name)).await;
    assert!(
        browser.client.get_alert_text().await.is_err(),
        "a script ran"
    );
    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn the_cart_survives_a_reload_and_my_orders_lists_the_order() {
    let app = spawn_app(Backend::Sqlite).await;
    stocked_product(&app, "Linen Apron", 5).await;
    let Some(browser) = browser(&app).await else {
        return;
    };
    browser.find_product("apron", "Linen Apron").await;
    browser.add_to_cart(2).await;
    browser.client.refresh().await.expect("reloaded");
    browser.wait_for(&by_text("a", "Linen Apron")).await;
    assert_eq!(browser.text_of("#cart-count").await, "2");

    browser.check_out("grace@example.com").await;
    browser.wait_for_status("StockReserved").await;
    let number = browser.text_of("main h1").await;
    browser.click_button("Pay").await;
    browser.wait_for_status("Confirmed").await;
    browser.open("/orders").await;
    let order = browser
        .wait_for(&format!("//li[.//a[normalize-space()=\"{number}\"]]"))
        .await;
    let listed = order.text().await.expect("order text");
    assert!(listed.contains("Confirmed"), "{listed}");
    assert!(listed.contains("2 × Linen Apron"), "{listed}");
    assert!(listed.contains("$27.59"), "{listed}");
    browser.screenshot("my-orders", 1280).await;
    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn an_operator_signs_in_finds_an_order_by_number_sees_its_deadline_and_cancels_it() {
    let app = spawn_app(Backend::Sqlite).await;
    let lamp = stocked_product(&app, "Desk Lamp", 5).await;
    let buyer = app.buyer();
    let placed = buyer
        .post("/api/ordering/checkout", checkout_request(&lamp, 2))
        .await;
    let order = placed.body["orderId"]
        .as_str()
        .expect("an order")
        .to_owned();
    let view = order_in(&buyer, &order, &["StockReserved"]).await;
    let number = view["orderNumber"].as_str().expect("a number").to_owned();
    let Some(browser) = browser(&app).await else {
        return;
    };
    browser.open("/admin/orders").await;
    browser
        .wait_for(&by_text("h1", "Sign in to operations"))
        .await;
    browser.fill("Admin token", ADMIN_TOKEN).await;
    browser.click_button("Sign in").await;
    browser.wait_for(&by_text("h1", "Orders")).await;
    browser.screenshot("console-orders", 1280).await;

    browser
        .fill("Order number or email", &number.to_lowercase())
        .await;
    browser.click_button("Find").await;
    browser
        .wait_for(&by_text("h1", &format!("Order {number}")))
        .await;
    browser.wait_for_text("Payment deadline").await;
    browser.wait_for_text("CheckoutStarted").await;
    browser.wait_for_text("PaymentTimedOut for checkout").await;
    browser.screenshot("console-order", 1280).await;
    browser.screenshot("console-order-375", 375).await;

    browser.open("/admin/checkout").await;
    browser.wait_for(&by_text("h1", "The checkout, live")).await;
    let census = app.admin().get("/api/ordering/checkouts/census").await;
    for state in census.body["states"].as_array().unwrap() {
        let name = state["state"].as_str().unwrap();
        let drawn = browser
            .wait_for(&format!("//a[@data-state='{name}']"))
            .await;
        let shown = drawn.text().await.unwrap();
        assert_eq!(
            shown,
            state["count"].to_string(),
            "the diagram's {name} is the API's"
        );
    }
    browser.click("//a[@data-state='StockReserved']").await;
    browser
        .wait_for(&by_text("h1", "Checkouts in StockReserved"))
        .await;
    browser.wait_for_text("Awaiting payment until").await;
    browser.open("/admin/checkout").await;
    browser.wait_for(&by_text("h1", "The checkout, live")).await;
    browser.screenshot("console-checkout", 1280).await;
    browser.open(&format!("/admin/orders/{order}")).await;
    browser.click_link("Cancel checkout…").await;
    browser.click_button("Cancel the checkout").await;
    eventually("the order failed", PATIENCE, || async {
        browser.open(&format!("/admin/orders/{order}")).await;
        let status = browser.wait_for("//dd[@id='status']").await;
        (status.text().await.ok()? == "Failed").then_some(())
    })
    .await;
    browser.wait_for_text("Cancelled by an operator").await;
    stock_becomes(&app, &lamp, (5, 0)).await;

    browser.open("/admin").await;
    browser.wait_for(&by_text("h1", "Dashboard")).await;
    browser.wait_for_text("Cancelled by an operator").await;
    browser.screenshot("console-dashboard", 1280).await;
    browser.close().await;
    app.stop().await;
}

/// Signs `browser` in to the console from its sign-in form.
async fn sign_in(browser: &Browser) {
    browser.open("/admin").await;
    browser
        .wait_for(&by_text("h1", "Sign in to operations"))
        .await;
    browser.fill("Admin token", ADMIN_TOKEN).await;
    browser.click_button("Sign in").await;
    browser.wait_for(&by_text("h1", "Dashboard")).await;
}

#[tokio::test]
async fn a_stuck_checkout_is_cancelled_from_the_stuck_list_and_its_stock_comes_back() {
    let app = spawn_app_with(Backend::Sqlite, |config| Config {
        stuck_after: Duration::ZERO,
        ..config
    })
    .await;
    let kettle = stocked_product(&app, "Copper Kettle", 3).await;
    let buyer = app.buyer();
    let placed = buyer
        .post("/api/ordering/checkout", checkout_request(&kettle, 2))
        .await;
    let order = placed.body["orderId"]
        .as_str()
        .expect("an order")
        .to_owned();
    order_in(&buyer, &order, &["StockReserved"]).await;
    stock_becomes(&app, &kettle, (3, 2)).await;
    let Some(browser) = browser(&app).await else {
        return;
    };
    sign_in(&browser).await;
    browser.click_link("Stuck").await;
    browser.wait_for_text("Awaiting payment until").await;
    browser.screenshot("console-stuck", 1280).await;
    browser.click_link("Cancel…").await;
    browser.click_button("Cancel the checkout").await;
    order_in(&buyer, &order, &["Failed"]).await;
    stock_becomes(&app, &kettle, (3, 0)).await;
    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_poison_message_shows_in_a_dead_letter_group_and_a_group_retry_completes_the_checkout() {
    let app = spawn_app(Backend::Sqlite).await;
    let stove = stocked_product(&app, "Camp Stove", 4).await;
    crate::faults::poison_reservations(&app, Backend::Sqlite).await;
    let buyer = app.buyer();
    let placed = buyer
        .post("/api/ordering/checkout", checkout_request(&stove, 1))
        .await;
    let order = placed.body["orderId"]
        .as_str()
        .expect("an order")
        .to_owned();
    let Some(browser) = browser(&app).await else {
        return;
    };
    sign_in(&browser).await;
    eventually("the dead letter listed", PATIENCE, || async {
        browser.open("/admin/dead-letters").await;
        let found = browser
            .client
            .find(Locator::XPath("//code[contains(., 'warehouse is closed')]"))
            .await;
        found.ok().map(|_| ())
    })
    .await;
    browser.screenshot("console-dead-letters", 1280).await;
    crate::faults::cure(&app, Backend::Sqlite).await;
    browser.click_link("Retry all…").await;
    browser.click_button("Retry them all").await;
    browser
        .wait_for_text("None: every message was handled.")
        .await;
    order_in(&buyer, &order, &["StockReserved"]).await;
    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn an_operator_adds_a_product_stocks_and_publishes_it_and_a_shopper_buys_it() {
    let app = spawn_app(Backend::Sqlite).await;
    let Some(browser) = browser(&app).await else {
        return;
    };
    browser.open("/admin/catalog").await;
    browser
        .wait_for(&by_text("h1", "Sign in to operations"))
        .await;
    browser.fill("Admin token", ADMIN_TOKEN).await;
    browser.click_button("Sign in").await;
    browser.wait_for(&by_text("h1", "Catalog")).await;

    browser.fill("Category name", "Garden").await;
    browser
        .fill("Category description", "Tools and seeds")
        .await;
    browser.click_button("Create category").await;
    browser
        .wait_for("//ul[@class='category-list']//a[normalize-space()='Garden']")
        .await;
    browser.fill("Product name", "Garden Gnome").await;
    browser
        .fill("Product description", "Guards the tulips.")
        .await;
    browser.fill("Price (USD)", "24.50").await;
    browser.choose("Category", "Garden").await;
    browser.click_button("Create product").await;
    browser.wait_for(&by_text("h1", "Garden Gnome")).await;
    browser
        .wait_for("//dd[@id='status' and normalize-space()='Draft']")
        .await;

    browser.fill("Units", "5").await;
    browser.fill("Reason", "First delivery").await;
    browser.click_button("Adjust stock").await;
    browser
        .wait_for("//table[@id='adjustments']//td[normalize-space()='First delivery']")
        .await;
    browser
        .wait_for("//dd[@id='on-hand' and normalize-space()='5']")
        .await;
    browser.click_button("Publish").await;
    browser
        .wait_for("//dd[@id='status' and normalize-space()='Published']")
        .await;
    let url = browser.client.current_url().await.expect("address");
    let product = url
        .path()
        .strip_prefix("/admin/catalog/products/")
        .expect("the product's page")
        .to_owned();
    browser.screenshot("console-product", 1280).await;
    browser.screenshot("console-product-375", 375).await;
    browser.click_link("Catalog").await;
    browser.wait_for(&by_text("h1", "Catalog")).await;
    browser.screenshot("console-catalog", 1280).await;
    browser.click_link("Garden").await;
    browser
        .wait_for("//table[@id='product-list']//a[normalize-space()='Garden Gnome']")
        .await;

    browser.find_product("gnome", "Garden Gnome").await;
    browser.add_to_cart(2).await;
    browser.check_out("ada@example.com").await;
    browser.wait_for_status("StockReserved").await;
    browser.click_button("Pay").await;
    browser.wait_for_status("Confirmed").await;
    stock_becomes(&app, &product, (3, 0)).await;
    browser
        .open(&format!("/admin/catalog/products/{product}"))
        .await;
    browser
        .wait_for("//dd[@id='on-hand' and normalize-space()='3']")
        .await;
    browser.close().await;
    app.stop().await;
}
