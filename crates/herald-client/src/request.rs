//! [`SubscribeRequest`]: what to subscribe to, built step by step.

use herald_proto::{LagPolicy, Op, ResumeToken, StartFrom, Subscribe};
use serde_json::Value;

/// What a subscription listens to: a builder over the wire's `subscribe`.
///
/// The client picks the subscription id itself, so there is none to set.
///
/// ```
/// use herald_client::SubscribeRequest;
/// use herald_proto::{LagPolicy, Op};
/// use serde_json::json;
///
/// let posts = SubscribeRequest::table("posts")
///     .ops([Op::Insert, Op::Update])
///     .filter(json!({"author": "ada"}))
///     .snapshot()
///     .on_lag(LagPolicy::Skip);
/// let chat = SubscribeRequest::channel("chat:lobby");
/// # let _ = (posts, chat);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubscribeRequest {
    wire: Subscribe,
}

impl SubscribeRequest {
    /// Changes to the documents of one table.
    pub fn table(name: impl Into<String>) -> SubscribeRequest {
        SubscribeRequest::from(Subscribe {
            table: Some(name.into()),
            ..Subscribe::default()
        })
    }

    /// Changes to every table (`"table": "*"`).
    #[must_use]
    pub fn all_tables() -> SubscribeRequest {
        SubscribeRequest::table("*")
    }

    /// Messages published to a channel.
    pub fn channel(name: impl Into<String>) -> SubscribeRequest {
        SubscribeRequest::from(Subscribe {
            channel: Some(name.into()),
            ..Subscribe::default()
        })
    }

    /// Only these operations (default: all).
    #[must_use]
    pub fn ops(mut self, ops: impl IntoIterator<Item = Op>) -> SubscribeRequest {
        self.wire.ops = Some(ops.into_iter().collect());
        self
    }

    /// A MongoDB-style filter on the document (or on a message's `data`).
    #[must_use]
    pub fn filter(mut self, filter: Value) -> SubscribeRequest {
        self.wire.filter = Some(filter);
        self
    }

    /// An SQL `WHERE` clause, instead of [`filter`](Self::filter), with the
    /// values of its `$1`, `$2`, ... parameters.
    #[must_use]
    pub fn where_sql(
        mut self,
        clause: impl Into<String>,
        params: impl IntoIterator<Item = Value>,
    ) -> SubscribeRequest {
        self.wire.where_clause = Some(clause.into());
        let params: Vec<Value> = params.into_iter().collect();
        self.wire.params = (!params.is_empty()).then_some(params);
        self
    }

    /// Deliver updates only when one of these top-level fields changed.
    #[must_use]
    pub fn changed<S: Into<String>>(
        mut self,
        fields: impl IntoIterator<Item = S>,
    ) -> SubscribeRequest {
        self.wire.changed = Some(fields.into_iter().map(Into::into).collect());
        self
    }

    /// Where to start (default: now). Events before the start position that
    /// match are sent as history before the subscription goes live.
    #[must_use]
    pub fn start_from(mut self, from: StartFrom) -> SubscribeRequest {
        self.wire.from = Some(from);
        self
    }

    /// Continue after a position saved earlier (for instance
    /// [`Subscription::position`](crate::Subscription::position)).
    #[must_use]
    pub fn resume_from(self, token: ResumeToken) -> SubscribeRequest {
        self.start_from(StartFrom::Token(token))
    }

    /// Send the matching documents first (tables only).
    #[must_use]
    pub fn snapshot(mut self) -> SubscribeRequest {
        self.wire.snapshot = true;
        self
    }

    /// What the server does when this connection falls behind.
    #[must_use]
    pub fn on_lag(mut self, policy: LagPolicy) -> SubscribeRequest {
        self.wire.on_lag = Some(policy);
        self
    }

    /// The wire message, under the id the client chose.
    pub(crate) fn into_wire(self, id: String) -> Subscribe {
        Subscribe { id, ..self.wire }
    }
}

/// Wraps a wire `subscribe`; its `id` is replaced by one the client picks.
impl From<Subscribe> for SubscribeRequest {
    fn from(wire: Subscribe) -> SubscribeRequest {
        SubscribeRequest { wire }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_proto::ClientMessage;
    use serde_json::json;

    #[test]
    fn builder_produces_the_wire_message() {
        let wire = SubscribeRequest::table("posts")
            .ops([Op::Insert])
            .where_sql("score > $1", [json!(3)])
            .changed(["score"])
            .start_from(StartFrom::Now)
            .snapshot()
            .on_lag(LagPolicy::Skip)
            .into_wire("s1".into());
        assert_eq!(
            serde_json::to_value(ClientMessage::Subscribe(wire)).unwrap(),
            json!({
                "type": "subscribe", "id": "s1", "table": "posts", "ops": ["insert"],
                "where": "score > $1", "params": [3], "changed": ["score"],
                "from": "now", "snapshot": true, "on_lag": "skip"
            })
        );
    }
}
