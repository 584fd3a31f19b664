//! Document routes: `/v1/tables/{table}/docs[/{id}]`.

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{DocPath, JsonBody, Params, TablePath, if_match};
use crate::query::DocFilter;
use crate::security::Caller;
use axum::Json;
use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, ETAG, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use herald_proto::{ErrorCode, WriteAck};
use herald_store::{StoreError, WriteOp};
use serde::Deserialize;

/// `POST /v1/tables/{table}/docs`: insert; 201 with the ack and a `Location`.
pub(crate) async fn insert(
    State(app): State<AppState>,
    caller: Caller,
    TablePath(table): TablePath,
    JsonBody(doc): JsonBody,
) -> Result<Response, ApiError> {
    let path = format!("/v1/tables/{table}/docs/");
    let ack = write(&app, &caller, WriteOp::insert(table, doc)?).await?;
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("{path}{}", urlencode(&ack.id))) {
        headers.insert(LOCATION, location);
    }
    Ok((StatusCode::CREATED, headers, Json(ack)).into_response())
}

/// `PUT /v1/tables/{table}/docs/{id}`: create or replace (`If-Match` optional).
pub(crate) async fn put(
    State(app): State<AppState>,
    caller: Caller,
    DocPath(table, id): DocPath,
    headers: HeaderMap,
    JsonBody(doc): JsonBody,
) -> Result<Json<WriteAck>, ApiError> {
    let expect = if_match(&headers)?;
    Ok(Json(
        write(&app, &caller, WriteOp::put(table, id, doc, expect)?).await?,
    ))
}

/// `PATCH /v1/tables/{table}/docs/{id}`: JSON merge patch (RFC 7396).
pub(crate) async fn patch(
    State(app): State<AppState>,
    caller: Caller,
    DocPath(table, id): DocPath,
    headers: HeaderMap,
    JsonBody(patch): JsonBody,
) -> Result<Json<WriteAck>, ApiError> {
    let expect = if_match(&headers)?;
    Ok(Json(
        write(&app, &caller, WriteOp::patch(table, id, patch, expect)).await?,
    ))
}

/// `DELETE /v1/tables/{table}/docs/{id}`.
pub(crate) async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    DocPath(table, id): DocPath,
    headers: HeaderMap,
) -> Result<Json<WriteAck>, ApiError> {
    let expect = if_match(&headers)?;
    Ok(Json(
        write(&app, &caller, WriteOp::delete(table, id, expect)).await?,
    ))
}

/// `GET /v1/tables/{table}/docs/{id}`: the document, its version in `ETag`.
/// A row the caller's rule excludes is `not_found`, like a missing one, so
/// its existence is not revealed.
pub(crate) async fn read(
    State(app): State<AppState>,
    caller: Caller,
    DocPath(table, id): DocPath,
) -> Result<Response, ApiError> {
    let grant = caller.check(
        &app,
        "read",
        app.security.access.read(&caller.0, table.as_str()),
    )?;
    let not_found = || StoreError::NotFound {
        table: table.to_string(),
        id: id.to_string(),
    };
    let record = app.herald.store().get(&table, &id)?.ok_or_else(not_found)?;
    if !grant.admits(&record.json) {
        return Err(not_found().into());
    }
    let etag = HeaderValue::from_str(&format!("\"{}\"", record.version))
        .expect("digits are a valid header");
    Ok((
        [
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (ETAG, etag),
        ],
        grant.view().doc(&record.json).into_owned(),
    )
        .into_response())
}

/// Query parameters of `GET /v1/tables/{table}/docs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueryParams {
    filter: Option<String>,
    #[serde(rename = "where")]
    where_clause: Option<String>,
    params: Option<String>,
    sort: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `GET /v1/tables/{table}/docs`: a page of documents in id order.
pub(crate) async fn query(
    State(app): State<AppState>,
    caller: Caller,
    TablePath(table): TablePath,
    Params(params): Params<QueryParams>,
) -> Result<Response, ApiError> {
    let access = &app.security.access;
    let grant = caller.check(&app, "query", access.read(&caller.0, table.as_str()))?;
    let filter = DocFilter::parse(
        params.filter.as_deref(),
        params.where_clause.as_deref(),
        params.params.as_deref(),
        &app.http.filter,
    )?;
    let filter = filter
        .restrict(access, &grant)
        .inspect_err(|e| app.security.denied(&caller.0, "query", e))?;
    let reverse = match params.sort.as_deref() {
        None | Some("id") => false,
        Some("-id") => true,
        Some(other) => {
            return Err(ApiError::new(
                ErrorCode::InvalidParameter,
                format!("sort must be \"id\" or \"-id\", got {other:?}"),
            ));
        }
    };
    let limit = params.limit.unwrap_or(app.http.default_page);
    if limit == 0 || limit > app.http.max_page {
        return Err(ApiError::new(
            ErrorCode::InvalidParameter,
            format!("limit must be between 1 and {}", app.http.max_page),
        ));
    }
    let after = params.cursor.as_deref().map(decode_cursor).transpose()?;
    let herald = app.herald.clone();
    let page = herald_core::blocking(move || {
        herald
            .store()
            .scan(&table, after.as_deref(), reverse, limit, |record| {
                filter.is_empty()
                    || serde_json::from_slice(&record.json).is_ok_and(|doc| filter.matches(&doc))
            })
    })
    .await?;

    // Documents are stored as JSON text: splice them in without re-parsing.
    let mut body = Vec::with_capacity(
        page.docs
            .iter()
            .map(|(_, r)| r.json.len() + 1)
            .sum::<usize>()
            + 64,
    );
    body.extend_from_slice(b"{\"docs\":[");
    for (i, (_, record)) in page.docs.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&grant.view().doc(&record.json));
    }
    body.extend_from_slice(b"],\"next_cursor\":");
    let cursor = page.next_after.map(|id| URL_SAFE_NO_PAD.encode(id));
    body.extend_from_slice(&serde_json::to_vec(&cursor).expect("an option of string serializes"));
    body.push(b'}');
    Ok((
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response())
}

fn decode_cursor(cursor: &str) -> Result<String, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidParameter,
                "cursor is not one this server returned",
            )
        })
}

async fn write(app: &AppState, caller: &Caller, op: WriteOp) -> Result<WriteAck, ApiError> {
    let op = caller.check(app, "write", app.security.access.write(&caller.0, op))?;
    Ok(app.herald.write_doc(op).await.inspect_err(|e| {
        if let StoreError::RuleViolation { .. } = e {
            app.security
                .denied(&caller.0, "write", &ApiError::forbidden(e.to_string()));
        }
    })?)
}

/// Percent-encodes an id for a URL path segment.
fn urlencode(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
