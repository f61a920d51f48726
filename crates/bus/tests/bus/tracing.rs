//! Trace context across messages: a message is handled in a span whose parent is the span that
//! wrote it, also when a consumer handles several messages together, and what it sends in
//! answer continues the trace of the message it answers. Spans go to an exporter in the test,
//! through a subscriber of this test's thread only (the test runs on one thread).

use std::sync::{Arc, Mutex};

use bus::{Delivered, Envelope, Handler, Tx, async_trait};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

use crate::helpers::*;

/// Every span that ended, as the SDK exports it.
#[derive(Debug, Clone, Default)]
struct Collected(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Collected {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

/// Answers each ping with a pong; takes a set of pings together, as the saga engine does.
#[derive(Default)]
struct Echo {
    set_sizes: Mutex<Vec<usize>>,
}

#[async_trait]
impl Handler for Echo {
    type Messages = Ping;

    fn name(&self) -> &str {
        "echo"
    }

    async fn handle(
        &self,
        ping: Ping,
        _: &Envelope,
        tx: &mut Tx<'_>,
    ) -> Result<(), bus::ConsumeError> {
        tx.publish(&Pong { id: ping.id }).await?;
        Ok(())
    }

    async fn handle_all(
        &self,
        pings: Vec<Delivered<'_, Ping>>,
        tx: &mut Tx<'_>,
    ) -> Result<Vec<usize>, bus::ConsumeError> {
        self.set_sizes.lock().unwrap().push(pings.len());
        for ping in &pings {
            tx.publish_caused_by(
                ping.envelope,
                &Pong {
                    id: ping.message.id,
                },
            )
            .await?;
        }
        Ok(Vec::new())
    }
}

/// Takes the pongs.
struct Sink;

#[async_trait]
impl Handler for Sink {
    type Messages = Pong;

    fn name(&self) -> &str {
        "sink"
    }

    async fn handle(&self, _: Pong, _: &Envelope, _: &mut Tx<'_>) -> Result<(), bus::ConsumeError> {
        Ok(())
    }
}

testkit::backend_tests! {
async fn a_set_handled_together_still_gives_each_message_its_span_and_its_trace(backend) {
    let exported = Collected::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exported.clone())
        .build();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let _only_this_thread = tracing::subscriber::set_default(subscriber);

    let t = test_db(backend).await;
    let echo = Arc::new(Echo::default());
    let bus = bus::Bus::builder(t.db.clone())
        .consumer(echo.clone())
        .consumer(Arc::new(Sink))
        .build();
    // Three pings written by three requests, each a trace of its own, in one transaction.
    let mut tx = bus.begin().await.unwrap();
    let mut requests = Vec::new();
    for n in 1..=3 {
        let request = tracing::info_span!("request", n);
        tx.publish(&ping(n)).instrument(request.clone()).await.unwrap();
        requests.push(request);
    }
    tx.commit().await.unwrap();
    drop(requests);
    bus.run_pending().await.unwrap();
    assert_eq!(*echo.set_sizes.lock().unwrap(), [3], "the pings were handled as one set");
    provider.force_flush().unwrap();

    let spans = exported.0.lock().unwrap().clone();
    let named = |name: &str| -> Vec<&SpanData> { spans.iter().filter(|s| s.name == name).collect() };
    let requests = named("request");
    let pings = named("echo Ping");
    let pongs = named("sink Pong");
    assert_eq!((requests.len(), pings.len(), pongs.len()), (3, 3, 3), "{:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>());
    for request in requests {
        let trace = request.span_context.trace_id();
        let ping = pings.iter().find(|s| s.span_context.trace_id() == trace)
            .expect("each request's ping is handled in its trace");
        assert_eq!(ping.parent_span_id, request.span_context.span_id());
        let pong = pongs.iter().find(|s| s.span_context.trace_id() == trace)
            .expect("the answer continues the trace of the ping it answers");
        assert_eq!(pong.parent_span_id, ping.span_context.span_id());
    }
}

async fn without_a_tracer_no_message_carries_a_trace_context(backend) {
    let t = test_db(backend).await;
    let bus = bus::Bus::builder(t.db.clone())
        .consumer(Arc::new(Echo::default()))
        .consumer(Arc::new(Sink))
        .build();
    let mut tx = bus.begin().await.unwrap();
    tx.publish(&ping(1)).instrument(tracing::info_span!("request")).await.unwrap();
    tx.commit().await.unwrap();
    let headers: Vec<String> = sqlx::query_scalar("SELECT headers FROM bus_queue")
        .fetch_all(t.db.reader())
        .await
        .unwrap();
    assert_eq!(headers, ["{}"]);
}
}
