//! `GET /v1/events`: replay the log as NDJSON, one event envelope per line.
//!
//! Errors found before the first byte (bad parameters, a position below
//! retention, a token from another epoch) are ordinary JSON errors. An error
//! after streaming started ends the stream with one last line
//! `{"error":{...}}`.

use crate::AppState;
use crate::access::ReadGrant;
use crate::error::ApiError;
use crate::extract::Params;
use crate::query::DocFilter;
use crate::security::Caller;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use herald_auth::Action;
use herald_core::View;
use herald_proto::{ErrorCode, Offset, ResumeToken, Timestamp};
use herald_store::{ChannelName, LogChunk, Store, StoreError, TableName, TopicFilter};
use serde::Deserialize;
use std::sync::Arc;

/// Records read from the store per step of the stream.
const CHUNK: usize = 1024;

/// Query parameters of `GET /v1/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplayParams {
    /// `table:<name>`, `table:*`, or a channel. Absent: every event.
    topic: Option<String>,
    /// Start after this offset, or after a resume token `<epoch>:<offset>`.
    from: Option<String>,
    /// Start at the first event with `ts >= since` (milliseconds).
    since: Option<u64>,
    /// Stop after this offset (inclusive).
    to: Option<u64>,
    /// Keep only events whose document (or message data) matches.
    filter: Option<String>,
    /// The same in SQL form.
    #[serde(rename = "where")]
    where_clause: Option<String>,
    /// Values for `$1`, `$2`... in `where`.
    params: Option<String>,
    /// Stop after this many events.
    limit: Option<u64>,
}

/// Streams the selected events.
pub(crate) async fn replay(
    State(app): State<AppState>,
    caller: Caller,
    Params(params): Params<ReplayParams>,
) -> Result<Response, ApiError> {
    let store = app.herald.clone();
    let topics = parse_topic(params.topic.as_deref())?;
    let access = &app.security.access;
    let grant = caller.check(
        &app,
        "replay",
        match &topics {
            TopicFilter::All | TopicFilter::AllTables => {
                access.read_all(&caller.0).map(|()| ReadGrant::default())
            }
            TopicFilter::Exact(topic) => match topic.strip_prefix("table:") {
                Some(table) => access.read(&caller.0, table),
                None => caller
                    .0
                    .require(Action::Read, topic)
                    .map(|()| ReadGrant::default()),
            },
        },
    )?;
    let filter = DocFilter::parse(
        params.filter.as_deref(),
        params.where_clause.as_deref(),
        params.params.as_deref(),
        &app.http.filter,
    )?;
    let filter = Arc::new(
        filter
            .restrict(access, &grant)
            .inspect_err(|e| app.security.denied(&caller.0, "replay", e))?,
    );
    let view = grant.view().clone();
    let after = match (&params.from, params.since) {
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                ErrorCode::InvalidParameter,
                "give from or since, not both",
            ));
        }
        (Some(from), None) => parse_from(from, store.store())?,
        (None, Some(since)) => store.store().position_at(Timestamp(since))?,
        // "Everything": from the earliest event retention kept.
        (None, None) => Offset(store.store().earliest().0.saturating_sub(1)),
    };
    // A channel's namespace may keep less history than the log (or none).
    let after = match &topics {
        TopicFilter::Exact(topic) if !topic.starts_with("table:") => {
            let channel = ChannelName::new(topic.as_str())?;
            if params.from.is_some() {
                app.hub.check_history(&channel, after).await?;
                after
            } else {
                match app.hub.history_floor(&channel).await? {
                    Some(floor) => after.max(floor),
                    None => after,
                }
            }
        }
        _ => after,
    };
    let to = params.to.map(Offset);
    let mut remaining = params.limit.unwrap_or(u64::MAX);

    let read = move |after: Offset| {
        let (herald, topics) = (store.clone(), topics.clone());
        herald_core::blocking(move || herald.store().read_log(after, to, &topics, CHUNK))
    };
    // Read the first chunk before answering, so its errors get a status.
    let mut first = read(after).await;
    // "From the earliest": if retention moved the earliest meanwhile, start
    // from the new one; the client never named a position that is now gone.
    let everything = params.from.is_none() && params.since.is_none();
    for _ in 0..3 {
        match first {
            Err(StoreError::Unrecoverable { earliest, .. }) if everything => {
                first = read(Offset(earliest.0.saturating_sub(1))).await;
            }
            _ => break,
        }
    }
    let first = first?;
    // Events committed after `position_at` answered can still be older than
    // `since` (it returns the head when nothing is that recent).
    let since = params.since.map(Timestamp);
    let body = async_stream::stream! {
        let mut chunk = Some(first);
        while let Some(current) = chunk.take() {
            let (lines, done) = render(&current, &filter, &view, since, &mut remaining);
            if !lines.is_empty() {
                yield Ok::<Bytes, std::convert::Infallible>(lines);
            }
            if done || current.done || remaining == 0 {
                return;
            }
            match read(current.next_after).await {
                Ok(next) => chunk = Some(next),
                Err(e) => {
                    let mut line = serde_json::to_vec(&ApiError::from(e).body()).unwrap_or_default();
                    line.push(b'\n');
                    yield Ok(Bytes::from(line));
                    return;
                }
            }
        }
    };
    Ok((
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        )],
        Body::from_stream(body),
    )
        .into_response())
}

/// Renders a chunk's matching records as NDJSON; `true` when `remaining` ran out.
fn render(
    chunk: &LogChunk,
    filter: &DocFilter,
    view: &View,
    since: Option<Timestamp>,
    remaining: &mut u64,
) -> (Bytes, bool) {
    let mut out = BytesMut::new();
    for record in &chunk.records {
        if *remaining == 0 {
            return (out.freeze(), true);
        }
        if since.is_some_and(|since| record.ts < since) {
            continue;
        }
        if filter.is_empty() && view.is_transparent() {
            out.put_slice(&record.json);
        } else {
            let Ok(event) = serde_json::from_slice::<herald_proto::Event>(&record.json) else {
                continue;
            };
            if !filter.matches(event.subject()) {
                continue;
            }
            out.put_slice(&view.event(&event, &record.json));
        }
        out.put_u8(b'\n');
        *remaining -= 1;
    }
    (out.freeze(), false)
}

fn parse_topic(topic: Option<&str>) -> Result<TopicFilter, ApiError> {
    Ok(match topic {
        None => TopicFilter::All,
        Some("table:*") => TopicFilter::AllTables,
        Some(t) => match t.strip_prefix("table:") {
            Some(table) => TopicFilter::Exact(TableName::new(table)?.topic()),
            None => TopicFilter::Exact(ChannelName::new(t)?.as_str().to_owned()),
        },
    })
}

/// `from` is an offset or a resume token; a token must be of this epoch.
fn parse_from(from: &str, store: &Store) -> Result<Offset, ApiError> {
    if let Ok(offset) = from.parse::<u64>() {
        return Ok(Offset(offset));
    }
    let token: ResumeToken = from.parse().map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidParameter,
            format!("from must be an offset or <epoch>:<offset> token: {e}"),
        )
    })?;
    Ok(store.token_offset(token)?)
}
