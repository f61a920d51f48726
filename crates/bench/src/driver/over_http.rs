//! One checkout as a buyer does it over HTTP: place the order, long-poll until it awaits
//! payment, pay, long-poll until it settles. Which statuses mean "awaits payment" and
//! "settled" comes from the checkout's declaration.

use std::time::Instant;

use serde_json::json;

use super::{
    Buyer, Inner, LONG_POLL_MS, POLL, SETTLE_LIMIT, awaits_buyer, awaits_buyer_or_settled,
    error_outcome, micros, settled, status_in,
};
use crate::{Ending, Outcome, Tally};
use microcommerce_service::ordering::OrderStatus;

impl Inner {
    pub(super) async fn checkout_over_http(
        &self,
        picks: &[String],
        decline: bool,
        tally: &Tally,
    ) -> Outcome {
        let started = Instant::now();
        let buyer = Buyer {
            cookie: format!("buyer_id={}", uuid::Uuid::new_v4()),
            base: &self.bases[self.take_turn()],
        };
        for product in picks {
            let body = json!({ "productId": product, "quantity": 1 });
            let added = self
                .send(
                    &buyer,
                    reqwest::Method::POST,
                    "/api/cart/items",
                    Some(body),
                    tally,
                )
                .await;
            if added.0 != 200 {
                return error_outcome(started, "cart", added.0);
            }
        }
        let body = json!({
            "email": crate::BUYER_EMAIL,
            "shippingAddress": crate::buyer_address(),
        });
        let placed_at = Instant::now();
        let placed = self
            .send(
                &buyer,
                reqwest::Method::POST,
                "/api/ordering/checkout",
                Some(body),
                tally,
            )
            .await;
        let Some(order) = placed.1["orderId"].as_str().map(String::from) else {
            return error_outcome(started, "checkout", placed.0);
        };
        let path = format!("/api/ordering/orders/{order}");
        let reported = status_in(&placed.1["status"]).unwrap_or(OrderStatus::Submitted);
        let first = self
            .settle_http(&buyer, &path, reported, awaits_buyer_or_settled, tally)
            .await;
        let to_awaiting = micros(placed_at);
        if !awaits_buyer(&first.0) {
            return settled(first, picks, started, Some(to_awaiting), None);
        }
        let paid_at = Instant::now();
        let pay = json!({ "shouldSucceed": !decline });
        let paid = self
            .send(
                &buyer,
                reqwest::Method::POST,
                &format!("{path}/pay"),
                Some(pay),
                tally,
            )
            .await;
        if paid.0 != 200 {
            return error_outcome(started, "pay", paid.0);
        }
        let Some(reported) = status_in(&paid.1["orderStatus"]) else {
            return error_outcome(started, "pay", paid.0);
        };
        let last = self
            .settle_http(&buyer, &path, reported, OrderStatus::is_settled, tally)
            .await;
        settled(
            last,
            picks,
            started,
            Some(to_awaiting),
            Some(micros(paid_at)),
        )
    }

    /// The order's first status that is `done`, starting from the status an answer
    /// `reported`: a done one needs no waiting (but a failure's reason takes one plain read),
    /// any other is waited out.
    async fn settle_http(
        &self,
        buyer: &Buyer<'_>,
        path: &str,
        reported: OrderStatus,
        done: fn(OrderStatus) -> bool,
        tally: &Tally,
    ) -> (Ending, Option<String>) {
        match reported {
            OrderStatus::Failed => self.wait_http(buyer, path, None, done, tally).await,
            status if done(status) => (Ending::Settled(status), None),
            current => {
                self.wait_http(buyer, path, Some(current), done, tally)
                    .await
            }
        }
    }

    /// Waits for a status that is `done` by long polling: each request is held by the server
    /// until the order leaves `current` (then the status the previous answer showed); without
    /// `current` the first request answers at once.
    async fn wait_http(
        &self,
        buyer: &Buyer<'_>,
        path: &str,
        current: Option<OrderStatus>,
        done: fn(OrderStatus) -> bool,
        tally: &Tally,
    ) -> (Ending, Option<String>) {
        let deadline = Instant::now() + SETTLE_LIMIT;
        let mut seen = current;
        while Instant::now() < deadline {
            let url = match seen {
                Some(status) => format!("{path}?waitWhile={status}&timeoutMs={LONG_POLL_MS}"),
                None => path.to_owned(),
            };
            let (_, order) = self
                .send(buyer, reqwest::Method::GET, &url, None, tally)
                .await;
            let status = status_in(&order["status"]);
            if let Some(status) = status.filter(|status| done(*status)) {
                let reason = order["failureReason"].as_str().map(String::from);
                return (Ending::Settled(status), reason);
            }
            if status.is_none() || seen == status {
                // Held to its timeout, an error, or a server without long polling.
                tokio::time::sleep(POLL).await;
            }
            seen = status;
        }
        (Ending::Stuck, None)
    }
}
