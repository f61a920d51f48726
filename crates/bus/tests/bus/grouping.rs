//! `Bus::transact`: concurrent write transactions share commits on SQLite, yet each job
//! succeeds or fails alone and is answered only once durable.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bus::{Bus, GroupError};
use futures_util::future::poll_immediate;

use crate::helpers::*;

#[derive(Debug, thiserror::Error)]
enum JobError {
    #[error("the job refused")]
    Refused,
    #[error(transparent)]
    Group(#[from] GroupError),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// Writes effect row `n` in a job's transaction.
async fn insert_effect(tx: &mut bus::Tx<'_>, n: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO effects (consumer, message_id, correlation_id, n) \
         VALUES ('job', 'm', 'c', $1)",
    )
    .bind(n)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_row(bus: &Bus, n: i64, outcome: &'static str) -> Result<i64, JobError> {
    bus.transact(move |tx| {
        Box::pin(async move {
            insert_effect(tx, n).await?;
            tx.publish(&ping(u32::try_from(n).unwrap()))
                .await
                .map_err(|e| match e {
                    bus::BusError::Sql(e) => JobError::Sql(e),
                    other => panic!("{other}"),
                })?;
            match outcome {
                "refuse" => Err(JobError::Refused),
                "panic" => panic!("scripted panic in a job"),
                _ => Ok(n),
            }
        })
    })
    .await
}

async fn rows(t: &TestDb) -> Vec<i64> {
    sqlx::query_scalar("SELECT n FROM effects ORDER BY n")
        .fetch_all(t.db.reader())
        .await
        .unwrap()
}

testkit::backend_tests! {
async fn concurrent_jobs_each_succeed_or_fail_alone(backend) {
    let t = test_db(backend).await;
    let bus = bus_with(&t.db, &[Scripted::applying("a")], sleepy());
    let jobs = (0..60).map(|n| {
        let bus = bus.clone();
        let outcome = match n % 10 {
            3 => "refuse",
            7 => "panic",
            _ => "commit",
        };
        tokio::spawn(async move { (n, outcome, insert_row(&bus, n, outcome).await) })
    });
    for job in futures_util::future::join_all(jobs).await {
        let (n, outcome, result) = job.unwrap();
        match (outcome, result) {
            ("commit", Ok(value)) => assert_eq!(value, n),
            ("refuse", Err(JobError::Refused)) => {}
            ("panic", Err(JobError::Group(GroupError::Panicked))) => {}
            (outcome, result) => panic!("job {n} ({outcome}) answered {result:?}"),
        }
    }
    let expected: Vec<i64> = (0..60).filter(|n| n % 10 != 3 && n % 10 != 7).collect();
    assert_eq!(rows(&t).await, expected, "exactly the successful jobs' writes");
    assert_eq!(queued(&t.db).await.len(), expected.len(), "and exactly their messages");
    let stats = bus.stats();
    if backend == Backend::Sqlite {
        assert_eq!(stats.grouped_jobs, 60);
        assert!(stats.group_commits < 60, "no commit was shared: {stats:?}");
    }
}
}

testkit::backend_tests! {
async fn a_job_is_answered_only_once_its_writes_are_visible_to_readers(backend) {
    let t = test_db(backend).await;
    let bus = bus_with(&t.db, &[Scripted::applying("a")], sleepy());
    for n in 0..5 {
        insert_row(&bus, n, "commit").await.unwrap();
        assert_eq!(rows(&t).await.len(), usize::try_from(n + 1).unwrap());
    }
}
}

/// A commit can fail where no single job did (here a deferred foreign key, checked only at
/// `COMMIT`; in life a full disk): then no job of the group was durable, so every caller gets
/// the error and none of their writes or messages remain.
#[tokio::test]
async fn when_the_shared_commit_fails_every_job_of_the_group_fails_and_nothing_remains() {
    let t = test_db(Backend::Sqlite).await;
    t.db.execute(sqlx::raw_sql(
        "CREATE TABLE parents (id INTEGER PRIMARY KEY); \
         CREATE TABLE children (id INTEGER PRIMARY KEY, parent INTEGER NOT NULL \
             REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED)",
    ))
    .await
    .unwrap();
    let bus = bus_with(&t.db, &[Scripted::applying("a")], sleepy());
    let orphan = {
        let bus = bus.clone();
        async move {
            bus.transact(|tx| {
                Box::pin(async move {
                    sqlx::query("INSERT INTO children (id, parent) VALUES (1, 42)")
                        .execute(&mut **tx)
                        .await?;
                    Ok::<_, JobError>(())
                })
            })
            .await
        }
    };
    let innocent: Vec<_> = (0..5)
        .map(|n| {
            let bus = bus.clone();
            async move { insert_row(&bus, n, "commit").await }
        })
        .collect();
    // Holding the write connection makes every job queue before the group begins, so that
    // all six share one commit (a free writer may commit the orphan alone).
    let holder = t.db.begin().await.unwrap();
    let all =
        tokio::spawn(async move { tokio::join!(orphan, futures_util::future::join_all(innocent)) });
    // The spawned task queues its jobs on its first poll, which this yield lets happen (the
    // test's runtime has one thread).
    tokio::task::yield_now().await;
    holder.rollback().await.unwrap();
    let (orphan, innocent) = all.await.unwrap();
    assert!(
        matches!(orphan, Err(JobError::Group(GroupError::Sql(_)))),
        "{orphan:?}"
    );
    let failed = innocent.iter().filter(|result| result.is_err()).count();
    assert_eq!(failed, 5, "the jobs sharing the commit were told it failed");
    assert_eq!(
        rows(&t).await.len(),
        5 - failed,
        "only jobs of other groups remain"
    );
    assert_eq!(queued(&t.db).await.len(), 5 - failed);
    assert_eq!(
        count(&t.db, "SELECT COUNT(*) FROM children").await,
        0,
        "the orphan is gone"
    );
    insert_row(&bus, 99, "commit").await.unwrap();
    assert!(
        rows(&t).await.contains(&99),
        "the writer goes on with the next group"
    );
}

/// Inserts row `n` (once `gate` opens, on the first run only), then fails or returns the rows
/// its transaction sees; counts its runs in `runs`.
async fn gated_job(
    bus: &Bus,
    n: i64,
    refuse: bool,
    gate: Option<Arc<tokio::sync::Notify>>,
    runs: Arc<AtomicUsize>,
) -> Result<i64, JobError> {
    bus.transact(move |tx| {
        let gate = gate.clone();
        let run = runs.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if let Some(gate) = gate.filter(|_| run == 0) {
                gate.notified().await;
            }
            insert_effect(tx, n).await?;
            if refuse {
                return Err(JobError::Refused);
            }
            Ok(sqlx::query_scalar("SELECT COUNT(*) FROM effects")
                .fetch_one(&mut **tx)
                .await?)
        })
    })
    .await
}

#[tokio::test]
async fn a_failing_job_makes_its_group_run_again_and_the_others_see_none_of_its_writes() {
    // Jobs share the transaction without savepoints; when one fails, the group is rolled back
    // and runs again with a savepoint per job. The first job holds the writer until the other
    // two have queued behind it, so that the three form one group: a job is queued when its
    // call is first polled, so each is polled once, in order, before the gate opens.
    let t = test_db(Backend::Sqlite).await;
    let bus = bus_with(&t.db, &[Scripted::applying("a")], sleepy());
    let gate = Arc::new(tokio::sync::Notify::new());
    let runs: Vec<Arc<AtomicUsize>> = (0..3).map(|_| Arc::default()).collect();
    let mut first = Box::pin(gated_job(
        &bus,
        0,
        false,
        Some(gate.clone()),
        runs[0].clone(),
    ));
    let mut failing = Box::pin(gated_job(&bus, 1, true, None, runs[1].clone()));
    let mut last = Box::pin(gated_job(&bus, 2, false, None, runs[2].clone()));
    for job in [&mut first, &mut failing, &mut last] {
        assert!(
            poll_immediate(job).await.is_none(),
            "a job waits for its group's commit"
        );
    }
    // The writer holds the first job at most; the others wait in its queue, counted.
    let waiting = bus.writer_queue();
    assert!(
        (2..=3).contains(&waiting),
        "{waiting} jobs counted as waiting"
    );
    // The permit waits for the first job if it has not reached the gate yet.
    gate.notify_one();
    let (first, failing, last) = tokio::join!(first, failing, last);
    assert_eq!(bus.writer_queue(), 0, "every job was taken up");

    assert_eq!(first.unwrap(), 1);
    assert!(matches!(failing, Err(JobError::Refused)));
    assert_eq!(
        last.unwrap(),
        2,
        "the last job saw the first one's row and not the failed one's"
    );
    assert_eq!(rows(&t).await, [0, 2]);
    let runs: Vec<usize> = runs.iter().map(|r| r.load(Ordering::SeqCst)).collect();
    assert_eq!(runs, [2, 2, 1], "the group ran again after the failure");
    assert_eq!(bus.stats().group_commits, 1);
}
