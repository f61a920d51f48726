//! PostgreSQL: news between instances. After a commit that wrote messages due soon or
//! announced changes, every instance's workers and waiters are told, through `NOTIFY`, and each
//! instance's listener passes the news on to its own.
//!
//! The news is not sent by the committing transaction itself. PostgreSQL serializes the
//! commits of notifying transactions behind one database-wide lock, held through each commit's
//! flush of the write-ahead log: every request and worker batch that wrote a message committed
//! alone, one disk flush after another, and group commit never happened. `pg_stat_activity`
//! showed it, most backends of a benchmark run waiting on `Lock:object` in `COMMIT`. So a commit
//! leaves its news with this module's sender, one task per bus, which sends whatever has
//! piled up, merged, from a connection of its own with `synchronous_commit` off: its
//! notifications commit without waiting for the disk, so the lock is held only for moments.
//! A notification is a hint (PostgreSQL loses pending ones in a crash anyway, and workers also
//! poll); the instance's own workers and waiters are woken in process at commit, so its
//! listener skips what its own sender sent.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::{PgConnection, PgListener};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use crate::Bus;

/// Channel on which commits that wrote messages wake every instance's workers.
const WAKE_CHANNEL: &str = "bus_wake";
/// Channel on which commits that announced changes name the changed correlation ids.
const CHANGED_CHANNEL: &str = "bus_changed";
/// Correlation ids per `NOTIFY` payload: 200 ids stay well below PostgreSQL's 8,000 bytes.
const CHANGES_PER_NOTIFY: usize = 200;

/// The sending side of one bus: the queue of its sender task, started with the first news.
#[derive(Default)]
pub(crate) struct Notifications {
    queue: OnceLock<mpsc::UnboundedSender<News>>,
    /// Server process id of the sender's connection (0 before it connects).
    sender_pid: Arc<AtomicU32>,
}

/// What one or more commits have to tell.
#[derive(Default)]
struct News {
    /// Messages due soon were written: workers should look.
    wake: bool,
    changed: Vec<Uuid>,
}

impl News {
    fn merge(&mut self, other: News) {
        self.wake |= other.wake;
        self.changed.extend(other.changed);
    }
}

impl Bus {
    /// PostgreSQL, after a commit: tells every instance that messages due soon were written
    /// (`wake`: their workers look) and which correlation ids changed (their waiters wake).
    /// Never waits.
    pub(crate) fn tell_instances(&self, wake: bool, changed: &[Uuid]) {
        let notifications = &self.inner.notifications;
        let queue = notifications.queue.get_or_init(|| {
            let (queue, news) = mpsc::unbounded_channel();
            let url = self.inner.db.url().to_owned();
            let pid = notifications.sender_pid.clone();
            self.inner.db.spawn_writing(send_news(url, pid, news));
            queue
        });
        let news = News {
            wake,
            changed: changed.to_vec(),
        };
        // Fails only once the sender is gone with its runtime: nobody is left to tell.
        let _ = queue.send(news);
    }

    /// Listens for every instance's news and passes it on to this one's workers and
    /// waiters, until `stop`; reconnects after a lost connection, polling meanwhile.
    pub(crate) async fn listen(self, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            let result: Result<(), sqlx::Error> = tokio::select! {
                result = self.pass_news_on() => result,
                _ = stop.changed() => return,
            };
            if let Err(error) = result {
                tracing::warn!(%error, "bus listener lost its connection; polling until it is back");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }

    async fn pass_news_on(&self) -> Result<(), sqlx::Error> {
        let mut listener = PgListener::connect(self.inner.db.url()).await?;
        listener.listen_all([WAKE_CHANNEL, CHANGED_CHANNEL]).await?;
        loop {
            let notification = listener.recv().await?;
            let own = self.inner.notifications.sender_pid.load(Ordering::Relaxed);
            if notification.process_id() == own {
                continue;
            }
            if notification.channel() == CHANGED_CHANNEL {
                let ids = notification.payload().split(',');
                let ids = ids.filter_map(|id| Uuid::parse_str(id).ok());
                self.inner.watchers.notify(ids);
            } else {
                self.wake_workers();
            }
        }
    }
}

/// The sender task: sends the news as it comes, all that piled up meanwhile at once. It ends
/// when the bus is dropped (the queue closes).
async fn send_news(url: String, pid: Arc<AtomicU32>, mut queue: mpsc::UnboundedReceiver<News>) {
    let mut connection: Option<PgConnection> = None;
    while let Some(mut news) = queue.recv().await {
        while let Ok(more) = queue.try_recv() {
            news.merge(more);
        }
        news.changed.sort_unstable();
        news.changed.dedup();
        // One retry on a fresh connection: the first failure may be a connection cut since.
        for attempt in 1..=2 {
            match send(&mut connection, &url, &pid, &news).await {
                Ok(()) => break,
                Err(error) => {
                    connection = None;
                    if attempt == 2 {
                        tracing::warn!(%error,
                            "could not notify other instances; their workers find the messages by polling");
                    }
                }
            }
        }
    }
}

async fn send(
    connection: &mut Option<PgConnection>,
    url: &str,
    pid: &AtomicU32,
    news: &News,
) -> Result<(), sqlx::Error> {
    let connection = match connection {
        Some(connection) => connection,
        None => {
            let mut fresh = PgConnection::connect(url).await?;
            sqlx::query("SET synchronous_commit = off")
                .execute(&mut fresh)
                .await?;
            let own: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(&mut fresh)
                .await?;
            pid.store(u32::try_from(own).unwrap_or(0), Ordering::Relaxed);
            connection.insert(fresh)
        }
    };
    let mut wake = news.wake;
    for ids in news.changed.chunks(CHANGES_PER_NOTIFY) {
        let payload: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        let sql = if wake {
            "SELECT pg_notify('bus_wake', ''), pg_notify('bus_changed', $1)"
        } else {
            "SELECT pg_notify('bus_changed', $1)"
        };
        sqlx::query(sql)
            .bind(payload.join(","))
            .execute(&mut *connection)
            .await?;
        wake = false;
    }
    if wake {
        sqlx::query("SELECT pg_notify('bus_wake', '')")
            .execute(&mut *connection)
            .await?;
    }
    Ok(())
}
