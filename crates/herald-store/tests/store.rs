//! Store behaviour through its public API, on a real directory.

use herald_proto::{EventBody, Offset, Timestamp, Version};
use herald_store::{
    ChannelName, DocId, RetentionConfig, Store, StoreConfig, StoreError, TableName, TopicFilter,
    WriteOp,
};
use serde_json::{Value, json};
use std::sync::Arc;

fn table(name: &str) -> TableName {
    TableName::new(name).unwrap()
}

fn id(s: &str) -> DocId {
    DocId::new(s).unwrap()
}

fn open(dir: &std::path::Path) -> Store {
    Store::open(dir, StoreConfig::default()).unwrap()
}

/// Inserts `count` documents `{"i": i, "pad": <pad bytes>}` into table `t`.
async fn insert_padded(store: &Store, count: u64, pad: usize) {
    for i in 0..count {
        store
            .write_one(
                WriteOp::insert(table("t"), json!({"i": i, "pad": "x".repeat(pad)})).unwrap(),
            )
            .await
            .unwrap();
    }
}

fn all_events(store: &Store) -> Vec<herald_proto::Event> {
    events_after(store, Offset::ZERO)
}

fn events_after(store: &Store, after: Offset) -> Vec<herald_proto::Event> {
    let chunk = store
        .read_log(after, None, &TopicFilter::All, usize::MAX)
        .unwrap();
    assert!(chunk.done);
    chunk
        .records
        .iter()
        .map(|r| r.to_event().unwrap())
        .collect()
}

#[tokio::test]
async fn document_lifecycle_appends_matching_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = table("posts");

    let a = store
        .write_one(WriteOp::insert(t.clone(), json!({"id": "a", "n": 1})).unwrap())
        .await
        .unwrap();
    assert_eq!(a.offset(), Offset(1));
    let dup = store
        .write_one(WriteOp::insert(t.clone(), json!({"id": "a"})).unwrap())
        .await;
    assert!(matches!(dup, Err(StoreError::AlreadyExists { .. })));

    let put = WriteOp::put(
        t.clone(),
        id("a"),
        json!({"n": 2, "x": true}),
        Some(Version(1)),
    )
    .unwrap();
    let ack = store.write_one(put).await.unwrap().into_ack().unwrap();
    assert_eq!((ack.version, ack.offset), (Version(2), Offset(2)));

    let stale = WriteOp::put(t.clone(), id("a"), json!({}), Some(Version(1))).unwrap();
    assert!(matches!(
        store.write_one(stale).await,
        Err(StoreError::VersionMismatch {
            expected: Version(1),
            actual: Some(Version(2))
        })
    ));

    store
        .write_one(WriteOp::patch(
            t.clone(),
            id("a"),
            json!({"x": null, "y": [1]}),
            None,
        ))
        .await
        .unwrap();
    let doc = store.get(&t, &id("a")).unwrap().unwrap();
    assert_eq!(doc.version, Version(3));
    assert_eq!(
        Value::Object(doc.to_map().unwrap()),
        json!({"id": "a", "n": 2, "y": [1]})
    );

    store
        .write_one(WriteOp::delete(t.clone(), id("a"), Some(Version(3))))
        .await
        .unwrap();
    assert!(store.get(&t, &id("a")).unwrap().is_none());
    assert!(matches!(
        store
            .write_one(WriteOp::delete(t.clone(), id("a"), None))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store
            .write_one(WriteOp::patch(t.clone(), id("a"), json!({}), None))
            .await,
        Err(StoreError::NotFound { .. })
    ));

    let events = all_events(&store);
    let ops: Vec<_> = events.iter().map(|e| e.op().as_str()).collect();
    assert_eq!(ops, ["insert", "update", "update", "delete"]);
    assert_eq!(
        events.iter().map(|e| e.offset.0).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    match &events[1].body {
        EventBody::Update {
            old, doc, changed, ..
        } => {
            assert_eq!(old, &json!({"id": "a", "n": 1}));
            assert_eq!(doc, &json!({"id": "a", "n": 2, "x": true}));
            assert_eq!(changed, &["n", "x"]);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(events.windows(2).all(|w| w[0].ts <= w[1].ts));
    assert!(
        events
            .iter()
            .all(|e| e.epoch == store.epoch() && e.topic == "table:posts")
    );
    store.close().await;
}

/// A group's documents are written after its writers are answered: the
/// writes right after must still see them (conflicts, versions, deletions).
#[tokio::test]
async fn writes_see_the_documents_of_writes_just_answered() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = table("t");
    for i in 0..300 {
        let d = format!("d{i}");
        let doc = json!({"id": d, "pad": "x".repeat(2000)});
        let version = |w: herald_store::Written| w.into_ack().unwrap().version;
        let first = store.write_one(WriteOp::insert(t.clone(), doc.clone()).unwrap());
        assert_eq!(version(first.await.unwrap()), Version(1));
        let again = store
            .write_one(WriteOp::insert(t.clone(), doc).unwrap())
            .await;
        assert!(
            matches!(again, Err(StoreError::AlreadyExists { .. })),
            "{i}: {again:?}"
        );
        let patch = WriteOp::patch(t.clone(), id(&d), json!({"n": i}), Some(Version(1)));
        assert_eq!(version(store.write_one(patch).await.unwrap()), Version(2));
        let delete = WriteOp::delete(t.clone(), id(&d), Some(Version(2)));
        store.write_one(delete).await.unwrap();
        let gone = WriteOp::patch(t.clone(), id(&d), json!({"n": 0}), None);
        let gone = store.write_one(gone).await;
        assert!(
            matches!(gone, Err(StoreError::NotFound { .. })),
            "{i}: {gone:?}"
        );
    }
    store.close().await;
    drop(store);
    let store = open(dir.path());
    assert!(store.get(&t, &id("d299")).unwrap().is_none());
    store.close().await;
}

#[tokio::test]
async fn a_failing_batch_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (t, u) = (table("t"), table("u"));
    store
        .write_one(WriteOp::insert(t.clone(), json!({"id": "x"})).unwrap())
        .await
        .unwrap();
    let batch = vec![
        WriteOp::insert(u.clone(), json!({"id": "new"})).unwrap(),
        WriteOp::put(t.clone(), id("x"), json!({"v": 1}), None).unwrap(),
        WriteOp::insert(t.clone(), json!({"id": "x"})).unwrap(),
    ];
    match store.write(batch).await {
        Err(StoreError::InBatch { index: 2, source }) => {
            assert!(matches!(*source, StoreError::AlreadyExists { .. }))
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(store.get(&u, &id("new")).unwrap().is_none());
    assert_eq!(
        store.get(&t, &id("x")).unwrap().unwrap().version,
        Version(1)
    );
    assert_eq!(store.head(), Offset(1));

    // Operations inside one batch see each other.
    let batch = vec![
        WriteOp::insert(u.clone(), json!({"id": "n", "a": 1})).unwrap(),
        WriteOp::patch(u.clone(), id("n"), json!({"b": 2}), Some(Version(1))),
        WriteOp::publish(ChannelName::new("chat:x").unwrap(), json!("hi"), None),
    ];
    let written = store.write(batch).await.unwrap();
    assert_eq!(
        written.iter().map(|w| w.offset().0).collect::<Vec<_>>(),
        [2, 3, 4]
    );
    assert_eq!(
        store.get(&u, &id("n")).unwrap().unwrap().version,
        Version(2)
    );
    assert!(matches!(
        store.write(vec![]).await,
        Err(StoreError::EmptyBatch)
    ));
    store.close().await;
}

#[tokio::test]
async fn offsets_and_epoch_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let epoch = store.epoch();
    for i in 0..5 {
        store
            .write_one(WriteOp::insert(table("t"), json!({"i": i})).unwrap())
            .await
            .unwrap();
    }
    store.close().await;
    drop(store);

    let store = open(dir.path());
    assert_eq!(store.epoch(), epoch);
    assert_eq!(store.head(), Offset(5));
    let w = store
        .write_one(WriteOp::insert(table("t"), json!({})).unwrap())
        .await
        .unwrap();
    assert_eq!(w.offset(), Offset(6), "a clean restart leaves no gap");
    assert_eq!(all_events(&store).len(), 6);
    store.close().await;
    assert!(matches!(
        store
            .write_one(WriteOp::insert(table("t"), json!({})).unwrap())
            .await,
        Err(StoreError::Closed)
    ));
    drop(store);

    let other = tempfile::tempdir().unwrap();
    let fresh = open(other.path());
    assert_ne!(fresh.epoch(), epoch, "a new directory is a new history");
}

#[tokio::test]
async fn scan_pages_through_a_table_in_id_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let ops = (0..25).map(|i| {
        WriteOp::insert(
            table("t"),
            json!({"id": format!("{i:02}"), "even": i % 2 == 0}),
        )
        .unwrap()
    });
    store.write(ops.collect()).await.unwrap();
    store
        .write_one(WriteOp::insert(table("t_other"), json!({"id": "zz"})).unwrap())
        .await
        .unwrap();

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .scan(&table("t"), after.as_deref(), false, 10, |_| true)
            .unwrap();
        seen.extend(page.docs.iter().map(|(id, _)| id.clone()));
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, (0..25).map(|i| format!("{i:02}")).collect::<Vec<_>>());

    let rev = store
        .scan(&table("t"), Some("10"), true, 3, |_| true)
        .unwrap();
    assert_eq!(
        rev.docs
            .iter()
            .map(|(id, _)| id.as_str())
            .collect::<Vec<_>>(),
        ["09", "08", "07"]
    );

    let even = store
        .scan(&table("t"), None, false, 100, |r| {
            r.to_map().unwrap()["even"] == json!(true)
        })
        .unwrap();
    assert_eq!(even.docs.len(), 13);
    assert!(even.next_after.is_none());
    store.close().await;
}

#[tokio::test]
async fn a_snapshot_keeps_the_documents_of_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(store.snapshot().unwrap().offset(), Offset(0));
    let put = |id: &str, n: i64| {
        WriteOp::put(table("t"), DocId::new(id).unwrap(), json!({"n": n}), None).unwrap()
    };
    store.write(vec![put("a", 1), put("b", 1)]).await.unwrap();
    let snapshot = store.snapshot().unwrap();
    assert_eq!(snapshot.offset(), store.head());
    let before = snapshot.offset();

    store.write(vec![put("a", 2), put("c", 1)]).await.unwrap();
    store
        .write_one(WriteOp::delete(table("t"), id("b"), None))
        .await
        .unwrap();
    let seen = |page: herald_store::Page| -> Vec<(String, Value)> {
        page.docs
            .into_iter()
            .map(|(id, r)| (id, serde_json::from_slice(&r.json).unwrap()))
            .collect()
    };
    let old = snapshot.scan(&table("t"), None, 10, |_| true).unwrap();
    assert_eq!(
        seen(old),
        vec![
            ("a".to_owned(), json!({"id": "a", "n": 1})),
            ("b".to_owned(), json!({"id": "b", "n": 1}))
        ]
    );
    assert_eq!(snapshot.offset(), before);
    let page = snapshot.scan(&table("t"), Some("a"), 10, |_| true).unwrap();
    assert_eq!(page.docs.len(), 1);
    let now = store.snapshot().unwrap();
    assert_eq!(now.offset(), store.head());
    let ids: Vec<String> = now
        .scan(&table("t"), None, 10, |_| true)
        .unwrap()
        .docs
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, ["a", "c"]);
}

#[tokio::test]
async fn log_reads_select_topics_and_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for i in 0..10 {
        let op = if i % 2 == 0 {
            WriteOp::insert(table("t"), json!({"i": i})).unwrap()
        } else {
            WriteOp::publish(
                ChannelName::new("chat:a").unwrap(),
                json!(i),
                Some("me".into()),
            )
        };
        store.write_one(op).await.unwrap();
    }
    let chat = store
        .read_log(
            Offset(2),
            Some(Offset(8)),
            &TopicFilter::Exact("chat:a".into()),
            100,
        )
        .unwrap();
    assert_eq!(
        chat.records.iter().map(|r| r.offset.0).collect::<Vec<_>>(),
        [4, 6, 8]
    );
    let tables = store
        .read_log(Offset::ZERO, None, &TopicFilter::AllTables, 2)
        .unwrap();
    assert_eq!(tables.records.len(), 2);
    assert!(!tables.done);
    let rest = store
        .read_log(tables.next_after, None, &TopicFilter::AllTables, 100)
        .unwrap();
    assert_eq!(rest.records.len(), 3);
    assert!(rest.done);

    let mut visited = 0;
    store
        .for_each_record(Offset(5), |_, _, _, _| visited += 1)
        .unwrap();
    assert_eq!(visited, 5);
    store.close().await;
}

#[tokio::test]
async fn position_at_finds_the_first_event_at_or_after_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut times = Vec::new();
    for i in 0..6 {
        store
            .write_one(WriteOp::insert(table("t"), json!({"i": i})).unwrap())
            .await
            .unwrap();
        times.push(all_events(&store).last().unwrap().ts);
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    for (i, ts) in times.iter().enumerate() {
        let after = store.position_at(*ts).unwrap();
        // The first event at `ts` is the first with that timestamp.
        let first = times.iter().position(|t| t == ts).unwrap();
        assert_eq!(after, Offset(first as u64), "event {i}");
    }
    assert_eq!(store.position_at(Timestamp(0)).unwrap(), Offset::ZERO);
    assert_eq!(store.position_at(Timestamp(u64::MAX)).unwrap(), Offset(6));
    store.close().await;
}

#[tokio::test]
async fn retention_by_size_removes_the_oldest_and_reports_the_earliest() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        retention: RetentionConfig {
            max_bytes: Some(2_000),
            ..RetentionConfig::default()
        },
        ..StoreConfig::default()
    };
    let store = Store::open(dir.path(), config.clone()).unwrap();
    insert_padded(&store, 50, 100).await;
    store.enforce_retention().await.unwrap();
    let earliest = store.earliest();
    assert!(earliest.0 > 1 && earliest.0 < 50, "earliest {earliest}");
    match store.read_log(Offset::ZERO, None, &TopicFilter::All, 100) {
        Err(StoreError::Unrecoverable { earliest: e, .. }) => assert_eq!(e, earliest),
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        store.position_at(Timestamp(0)),
        Err(StoreError::Unrecoverable { .. })
    ));
    let kept = store
        .read_log(Offset(earliest.0 - 1), None, &TopicFilter::All, 100)
        .unwrap();
    assert_eq!(kept.records.first().unwrap().offset, earliest);
    assert_eq!(kept.records.last().unwrap().offset, Offset(50));
    // Documents never expire.
    assert_eq!(
        store
            .scan(&table("t"), None, false, 100, |_| true)
            .unwrap()
            .docs
            .len(),
        50
    );
    store.close().await;
    drop(store);

    let store = Store::open(dir.path(), config).unwrap();
    assert_eq!(store.earliest(), earliest, "the retention point is durable");
    store.close().await;
}

#[tokio::test]
async fn concurrent_writers_share_commits_and_get_distinct_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let mut tasks = Vec::new();
    for w in 0..32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut offsets = Vec::new();
            for i in 0..50 {
                let op = WriteOp::insert(table("t"), json!({"id": format!("{w}-{i}")})).unwrap();
                offsets.push(store.write_one(op).await.unwrap().offset().0);
            }
            offsets
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let offsets = t.await.unwrap();
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "one writer's offsets increase"
        );
        all.extend(offsets);
    }
    all.sort_unstable();
    assert_eq!(all, (1..=1600).collect::<Vec<_>>());
    store.close().await;
}

#[tokio::test]
async fn oversize_documents_and_messages_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        max_doc_bytes: 100,
        ..StoreConfig::default()
    };
    let store = Store::open(dir.path(), config).unwrap();
    let big = json!({"id": "a", "pad": "x".repeat(200)});
    assert!(matches!(
        store
            .write_one(WriteOp::insert(table("t"), big).unwrap())
            .await,
        Err(StoreError::DocTooLarge { max: 100, .. })
    ));
    store
        .write_one(WriteOp::insert(table("t"), json!({"id": "a"})).unwrap())
        .await
        .unwrap();
    assert!(matches!(
        store
            .write_one(WriteOp::patch(
                table("t"),
                id("a"),
                json!({"pad": "x".repeat(200)}),
                None
            ))
            .await,
        Err(StoreError::DocTooLarge { .. })
    ));
    assert!(matches!(
        store
            .write_one(WriteOp::publish(
                ChannelName::new("c").unwrap(),
                json!("x".repeat(200)),
                None
            ))
            .await,
        Err(StoreError::DocTooLarge { .. })
    ));
    assert_eq!(store.head(), Offset(1));
    store.close().await;
}

/// Writers racing on the same documents: groups overlap in the pipeline (one
/// being fsynced while the next is built), so the committer must see the
/// writes of groups still in flight. If it read stale state, two
/// compare-and-swap writes would both succeed at the same version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_compare_and_swap_on_one_document_never_loses_an_update() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let t = table("counters");
    store
        .write_one(WriteOp::insert(t.clone(), json!({"id": "c", "n": 0})).unwrap())
        .await
        .unwrap();
    let writers = 16;
    let per_writer = 40;
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let (store, t) = (store.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            while done < per_writer {
                let current = store.get(&t, &id("c")).unwrap().unwrap();
                let n = current.to_map().unwrap()["n"].as_u64().unwrap();
                let op = WriteOp::put(
                    t.clone(),
                    id("c"),
                    json!({"n": n + 1}),
                    Some(current.version),
                )
                .unwrap();
                match store.write_one(op).await {
                    Ok(_) => done += 1,
                    Err(StoreError::VersionMismatch { .. }) => {}
                    Err(e) => panic!("{e}"),
                }
            }
        }));
    }
    // Blind inserts racing on fresh ids: exactly one of each wins.
    let mut inserts = Vec::new();
    for _ in 0..8 {
        let (store, t) = (store.clone(), t.clone());
        inserts.push(tokio::spawn(async move {
            let mut won = 0;
            for k in 0..50 {
                let op = WriteOp::insert(t.clone(), json!({"id": format!("race-{k}")})).unwrap();
                match store.write_one(op).await {
                    Ok(_) => won += 1,
                    Err(StoreError::AlreadyExists { .. }) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            won
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut won = 0;
    for task in inserts {
        won += task.await.unwrap();
    }
    assert_eq!(won, 50, "each racing insert has exactly one winner");

    let total = (writers * per_writer) as u64;
    let doc = store.get(&t, &id("c")).unwrap().unwrap();
    assert_eq!(doc.to_map().unwrap()["n"], json!(total));
    assert_eq!(doc.version, Version(total + 1));
    let versions: Vec<u64> = all_events(&store)
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Update { id, version, .. } if id == "c" => Some(version.0),
            _ => None,
        })
        .collect();
    assert_eq!(
        versions,
        (2..=total + 1).collect::<Vec<_>>(),
        "every update has its own version, in order"
    );
    store.close().await;
}

/// Age-based retention, enforced by the store's own ticker (no explicit
/// call): events older than `max_age` go, newer ones and documents stay.
#[tokio::test]
async fn retention_by_age_runs_on_its_own_and_keeps_recent_events() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        retention: RetentionConfig {
            max_age: Some(std::time::Duration::from_millis(1500)),
            check_interval: std::time::Duration::from_millis(50),
            ..RetentionConfig::default()
        },
        ..StoreConfig::default()
    };
    let store = Store::open(dir.path(), config).unwrap();
    for i in 0..5 {
        store
            .write_one(WriteOp::insert(table("t"), json!({"i": i})).unwrap())
            .await
            .unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(2000)).await;
    store
        .write_one(WriteOp::insert(table("t"), json!({"i": 5})).unwrap())
        .await
        .unwrap();
    // The ticker trims on its own; wait for it (bounded).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.earliest() < Offset(6) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "retention never ran: earliest {}",
            store.earliest()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(store.earliest(), Offset(6), "the fresh event is kept");
    let kept = store
        .read_log(Offset(5), None, &TopicFilter::All, 10)
        .unwrap();
    assert_eq!(
        kept.records.iter().map(|r| r.offset.0).collect::<Vec<_>>(),
        [6]
    );
    assert_eq!(
        store
            .scan(&table("t"), None, false, 10, |_| true)
            .unwrap()
            .docs
            .len(),
        6
    );
    store.close().await;
}

/// A read step stops at about 8 MiB whatever its count limit, so a client
/// asking for many large documents cannot make the server hold them all.
#[tokio::test]
async fn reads_are_bounded_in_bytes_and_page_through_everything() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let pad = "x".repeat(600_000);
    for i in 0..20 {
        store
            .write_one(
                WriteOp::insert(table("big"), json!({"id": format!("{i:02}"), "pad": pad}))
                    .unwrap(),
            )
            .await
            .unwrap();
    }
    let first = store
        .scan(&table("big"), None, false, 1000, |_| true)
        .unwrap();
    let bytes: usize = first.docs.iter().map(|(_, r)| r.json.len()).sum();
    assert!(
        first.docs.len() < 20 && bytes < 9 << 20,
        "{} docs, {bytes} bytes",
        first.docs.len()
    );
    let rest = store
        .scan(
            &table("big"),
            first.next_after.as_deref(),
            false,
            1000,
            |_| true,
        )
        .unwrap();
    assert_eq!(first.docs.len() + rest.docs.len(), 20);
    assert!(
        rest.next_after.is_none(),
        "no cursor once the table is exhausted"
    );

    let chunk = store
        .read_log(Offset::ZERO, None, &TopicFilter::All, 1000)
        .unwrap();
    assert!(!chunk.done && chunk.records.len() < 20);
    let more = store
        .read_log(chunk.next_after, None, &TopicFilter::All, 1000)
        .unwrap();
    assert!(more.done);
    assert_eq!(chunk.records.len() + more.records.len(), 20);
    store.close().await;
}

#[test]
fn a_retention_check_interval_of_zero_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        retention: RetentionConfig {
            max_bytes: Some(1),
            check_interval: std::time::Duration::ZERO,
            ..RetentionConfig::default()
        },
        ..StoreConfig::default()
    };
    assert!(matches!(
        Store::open(dir.path(), config),
        Err(StoreError::InvalidConfig(_))
    ));
}

/// Regression: after retention emptied the log, a reopened store reported
/// head 0 (below its earliest offset) and restarted its clock at 0.
#[tokio::test]
async fn a_log_emptied_by_retention_keeps_its_head_and_clock_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        retention: RetentionConfig {
            max_bytes: Some(0),
            ..RetentionConfig::default()
        },
        ..StoreConfig::default()
    };
    let store = Store::open(dir.path(), config.clone()).unwrap();
    for i in 0..5 {
        store
            .write_one(WriteOp::insert(table("t"), json!({"i": i})).unwrap())
            .await
            .unwrap();
    }
    store.enforce_retention().await.unwrap();
    assert_eq!(store.earliest(), Offset(6), "everything was trimmed");
    store.close().await;
    drop(store);

    let store = Store::open(dir.path(), config).unwrap();
    assert_eq!(store.head(), Offset(5));
    assert_eq!(store.earliest(), Offset(6));
    let chunk = store
        .read_log(store.head(), None, &TopicFilter::All, 10)
        .unwrap();
    assert!(
        chunk.records.is_empty() && chunk.done,
        "reading from the head is fine"
    );
    let w = store
        .write_one(WriteOp::insert(table("t"), json!({"i": 5})).unwrap())
        .await
        .unwrap();
    assert_eq!(w.offset(), Offset(6));
    store.close().await;
}

#[tokio::test]
async fn a_router_appends_derived_messages_with_their_change_and_only_then() {
    use herald_store::{Derived, Router};
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // Every change of `posts` with a `tag` is republished to `tag:<tag>`.
    store.set_router(Some(Router::new(|change, out| {
        if let EventBody::Insert { table, doc, .. } | EventBody::Update { table, doc, .. } = change
            && table == "posts"
            && let Some(tag) = doc.get("tag").and_then(Value::as_str)
        {
            out.push(Derived {
                channel: ChannelName::new(format!("tag:{tag}")).unwrap(),
                data: doc.clone(),
                from: Some("route:tags".into()),
            });
        }
    })));
    let t = table("posts");
    let a = store
        .write_one(WriteOp::insert(t.clone(), json!({"id": "a", "tag": "x"})).unwrap())
        .await
        .unwrap();
    assert_eq!(a.offset(), Offset(1));
    // A failed write derives nothing.
    let dup = store
        .write_one(WriteOp::insert(t.clone(), json!({"id": "a", "tag": "y"})).unwrap())
        .await;
    assert!(dup.is_err());
    // A batch: each change followed by what it derives.
    store
        .write(vec![
            WriteOp::insert(t.clone(), json!({"id": "b"})).unwrap(),
            WriteOp::insert(table("other"), json!({"id": "c", "tag": "z"})).unwrap(),
            WriteOp::put(t.clone(), id("a"), json!({"tag": "y"}), None).unwrap(),
        ])
        .await
        .unwrap();
    store.set_router(None);
    store
        .write_one(WriteOp::insert(t, json!({"id": "d", "tag": "x"})).unwrap())
        .await
        .unwrap();
    let topics: Vec<(u64, String)> = all_events(&store)
        .iter()
        .map(|e| (e.offset.0, e.topic.clone()))
        .collect();
    let expected = [
        (1, "table:posts"),
        (2, "tag:x"),
        (3, "table:posts"),
        (4, "table:other"),
        (5, "table:posts"),
        (6, "tag:y"),
        (7, "table:posts"),
    ];
    assert_eq!(
        topics,
        expected.map(|(o, t)| (o, t.to_owned())).to_vec(),
        "derived messages follow their change"
    );
    let events = all_events(&store);
    match &events[5].body {
        EventBody::Publish { data, from, .. } => {
            assert_eq!(data, &json!({"id": "a", "tag": "y"}));
            assert_eq!(from.as_deref(), Some("route:tags"));
        }
        other => panic!("{other:?}"),
    }
    store.close().await;
}

fn segments(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

/// A crash in the middle of an append leaves part of a record at the end of
/// the newest segment: opening cuts it off and the log goes on after the
/// last whole record.
#[tokio::test]
async fn a_torn_append_is_cut_off_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for i in 0..5 {
        store
            .write_one(WriteOp::insert(table("t"), json!({"i": i})).unwrap())
            .await
            .unwrap();
    }
    store.close().await;
    drop(store);
    let newest = segments(dir.path()).pop().unwrap();
    // The records end with `}`; direct writes leave zeros to the page's end.
    let bytes = std::fs::read(&newest).unwrap();
    let whole = bytes.iter().rposition(|&b| b != 0).unwrap() as u64 + 1;
    // Half a record header and a few body bytes, as a cut write leaves.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&newest)
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &[200, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0], whole)
        .unwrap();
    drop(file);

    let store = open(dir.path());
    assert_eq!(std::fs::metadata(&newest).unwrap().len(), whole);
    assert_eq!(store.head(), Offset(5));
    assert_eq!(all_events(&store).len(), 5);
    let next = store
        .write_one(WriteOp::insert(table("t"), json!({"i": 5})).unwrap())
        .await
        .unwrap();
    assert_eq!(next.offset(), Offset(6));
    assert_eq!(all_events(&store).len(), 6);
    store.close().await;
}

/// Damage inside an older segment is not a crash artifact: opening refuses
/// with a corruption error naming the file, instead of skipping events.
#[tokio::test]
async fn damage_in_an_older_segment_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        segment_bytes: 4096,
        ..StoreConfig::default()
    };
    let store = Store::open(dir.path(), config.clone()).unwrap();
    insert_padded(&store, 40, 200).await;
    store.close().await;
    drop(store);
    let first = segments(dir.path()).remove(0);
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&first, bytes).unwrap();
    match Store::open(dir.path(), config) {
        Err(StoreError::Corrupt(why)) => assert!(why.contains(".seg"), "{why}"),
        other => panic!("expected a corruption error, got {other:?}"),
    }
}

/// The log rolls over into new segment files; retention moves the start
/// exactly and deletes the files that hold only older events; all of it
/// holds across a restart.
#[tokio::test]
async fn segments_roll_and_retention_deletes_whole_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        segment_bytes: 4096,
        retention: RetentionConfig {
            max_bytes: Some(6000),
            ..RetentionConfig::default()
        },
        ..StoreConfig::default()
    };
    let store = Store::open(dir.path(), config.clone()).unwrap();
    insert_padded(&store, 100, 200).await;
    let before = segments(dir.path()).len();
    assert!(before >= 6, "{before} segments");
    store.enforce_retention().await.unwrap();
    let earliest = store.earliest();
    let kept = store
        .read_log(Offset(earliest.0 - 1), None, &TopicFilter::All, 1000)
        .unwrap();
    assert_eq!(kept.records.first().unwrap().offset, earliest);
    assert_eq!(kept.records.last().unwrap().offset, Offset(100));
    let retained: u64 = store.stats().log_bytes;
    assert!(retained <= 6000, "{retained} bytes retained");
    let after = segments(dir.path()).len();
    assert!(after < before && after <= 4, "{before} -> {after} segments");
    store.close().await;
    drop(store);

    let store = Store::open(dir.path(), config).unwrap();
    assert_eq!(store.earliest(), earliest);
    assert_eq!(
        store.stats().log_bytes,
        retained,
        "the size is recounted exactly"
    );
    assert_eq!(
        events_after(&store, Offset(earliest.0 - 1)).len() as u64,
        100 - earliest.0 + 1
    );
    assert_eq!(
        store
            .scan(&table("t"), None, false, 1000, |_| true)
            .unwrap()
            .docs
            .len(),
        100,
        "documents never expire"
    );
    store.close().await;
}

/// Documents are written after the writers are answered; a read that starts
/// after an answer still sees the write.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_after_the_answer_sees_the_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let mut tasks = Vec::new();
    for w in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                let key = format!("{w}-{i}");
                let ack = store
                    .write_one(WriteOp::insert(table("t"), json!({"id": key})).unwrap())
                    .await
                    .unwrap()
                    .into_ack()
                    .unwrap();
                let got = store.get(&table("t"), &id(&key)).unwrap();
                assert_eq!(got.map(|r| r.version), Some(ack.version), "{key}");
                let snapshot = store.snapshot().unwrap();
                assert!(snapshot.offset() >= ack.offset && snapshot.offset() <= store.head());
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    store.close().await;
}

#[test]
fn a_segment_size_below_4_kib_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        segment_bytes: 100,
        ..StoreConfig::default()
    };
    assert!(matches!(
        Store::open(dir.path(), config),
        Err(StoreError::InvalidConfig(why)) if why.contains("segment_bytes")
    ));
}
