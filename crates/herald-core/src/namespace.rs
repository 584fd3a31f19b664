//! Channel namespaces: the policy of every channel whose name starts with
//! `<namespace>:` — history, presence, join/leave announcements, room size,
//! who may publish, whether rooms outlive their members.
//!
//! A channel's namespace is the part of its name before the first `:`
//! (`chat:lobby` is in `chat`; `lobby` is in none). Channels of a namespace
//! that is not configured, and channels without one, follow the namespace
//! named `*` if configured, else the defaults of [`Namespace`].

use herald_store::ChannelName;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// The name of the namespace every unconfigured one follows.
pub const FALLBACK: &str = "*";

/// One namespace's policy (`[namespaces.<name>]` in `herald.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Namespace {
    /// Messages are appended to the log: replayable, resumable (`from`),
    /// durable. `false`: delivered live only, never written — no offset, no
    /// replay. Default true.
    pub history: bool,
    /// How far back clients may read this namespace's history (replay,
    /// `from`): older messages answer `unrecoverable_position`. It cannot
    /// extend the store's own retention. Default: no limit of its own.
    #[serde(with = "humantime_serde")]
    pub retention: Option<Duration>,
    /// Rooms keep presence: members with their data, listed by `presence`
    /// and changed with `update_presence`. Default true.
    pub presence: bool,
    /// Changes of members are announced to the channel's subscribers:
    /// joins, leaves and presence updates (`member_joined`, `member_left`,
    /// `member_updated`). Default false: in big rooms they cost a delivery
    /// to every member per change.
    pub join_leave: bool,
    /// Most members of one room; 0: no limit. A room's own setting wins.
    /// Default 0.
    pub max_members: u32,
    /// Who may publish (on top of the `publish:<channel>` permission).
    /// Default `anyone`.
    pub publish: PublishPolicy,
    /// Rooms (their settings: moderators, member limit, data) are stored
    /// and survive restarts; otherwise a room vanishes when its last member
    /// leaves. Default false.
    pub persistent: bool,
    /// A member whose connection was not heard from (no message, no pong)
    /// for this long is removed, and its leave announced. Must exceed the
    /// heartbeat interval. Default 60s.
    #[serde(with = "humantime_serde")]
    pub presence_ttl: Duration,
}

impl Default for Namespace {
    fn default() -> Self {
        Namespace {
            history: true,
            retention: None,
            presence: true,
            join_leave: false,
            max_members: 0,
            publish: PublishPolicy::Anyone,
            persistent: false,
            presence_ttl: Duration::from_secs(60),
        }
    }
}

/// Who may publish to a namespace's channels, beyond holding
/// `publish:<channel>`. Servers (API keys, admins) always may.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PublishPolicy {
    /// Anyone with the permission.
    #[default]
    Anyone,
    /// Members of the room (any connection of the same user) and its
    /// moderators.
    Members,
    /// The room's moderators.
    Moderators,
    /// Servers only.
    Server,
}

impl PublishPolicy {
    /// The configuration spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            PublishPolicy::Anyone => "anyone",
            PublishPolicy::Members => "members",
            PublishPolicy::Moderators => "moderators",
            PublishPolicy::Server => "server",
        }
    }
}

/// What a publisher is to a room, for its [`PublishPolicy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// An API key or an admin.
    pub server: bool,
    /// A moderator of the room.
    pub moderator: bool,
    /// A member of the room (through any of its connections).
    pub member: bool,
}

impl PublishPolicy {
    /// Whether a publisher of this standing may publish.
    #[must_use]
    pub fn allows(self, who: Standing) -> bool {
        who.server
            || match self {
                PublishPolicy::Anyone => true,
                PublishPolicy::Members => who.member || who.moderator,
                PublishPolicy::Moderators => who.moderator,
                PublishPolicy::Server => false,
            }
    }
}

/// Every namespace's policy, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespaces {
    named: HashMap<String, Arc<Namespace>>,
    fallback: Arc<Namespace>,
}

impl Namespaces {
    /// Validates `[namespaces.*]`: names are channel-name characters
    /// without `:` (or `*`), and every presence TTL exceeds `heartbeat`.
    pub fn new(
        config: &BTreeMap<String, Namespace>,
        heartbeat: Duration,
    ) -> Result<Namespaces, String> {
        let mut named = HashMap::new();
        let mut fallback = Arc::new(Namespace::default());
        for (name, policy) in config {
            if name != FALLBACK
                && (name.contains(':') || ChannelName::new(format!("{name}:x")).is_err())
            {
                return Err(format!(
                    "[namespaces.{name}]: a namespace is the part of a channel name before \
                     its first ':' (no ':', whitespace, control characters or \"..\"), or \"*\""
                ));
            }
            if policy.presence_ttl <= heartbeat {
                return Err(format!(
                    "namespaces.{name}.presence_ttl ({}) must exceed realtime.heartbeat ({}): \
                     members would expire between heartbeats",
                    humantime::format_duration(policy.presence_ttl),
                    humantime::format_duration(heartbeat),
                ));
            }
            if policy.retention.is_some_and(|r| r.is_zero()) {
                return Err(format!(
                    "namespaces.{name}.retention must be positive (or left out)"
                ));
            }
            let policy = Arc::new(policy.clone());
            if name == FALLBACK {
                fallback = policy;
            } else {
                named.insert(name.clone(), policy);
            }
        }
        Ok(Namespaces { named, fallback })
    }

    /// The policy of `channel`.
    #[must_use]
    pub fn of(&self, channel: &str) -> &Namespace {
        name_of(channel)
            .and_then(|ns| self.named.get(ns))
            .unwrap_or(&self.fallback)
    }

    /// The shortest presence TTL: how often presence must be swept.
    #[must_use]
    pub fn shortest_ttl(&self) -> Duration {
        self.named
            .values()
            .map(|n| n.presence_ttl)
            .fold(self.fallback.presence_ttl, Duration::min)
    }
}

/// The namespace part of a channel name (`None`: it has no `:`).
#[must_use]
pub fn name_of(channel: &str) -> Option<&str> {
    channel.split_once(':').map(|(ns, _)| ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(entries: &[(&str, Namespace)]) -> BTreeMap<String, Namespace> {
        entries
            .iter()
            .map(|(n, p)| ((*n).to_owned(), p.clone()))
            .collect()
    }

    #[test]
    fn a_channel_follows_its_namespace_then_the_fallback() {
        let chat = Namespace {
            join_leave: true,
            ..Namespace::default()
        };
        let fallback = Namespace {
            history: false,
            ..Namespace::default()
        };
        let ns = Namespaces::new(
            &config(&[("chat", chat.clone()), ("*", fallback.clone())]),
            Duration::from_secs(20),
        )
        .unwrap();
        assert_eq!(ns.of("chat:lobby"), &chat);
        assert_eq!(ns.of("chat:a:b"), &chat);
        assert_eq!(ns.of("chatter:x"), &fallback);
        assert_eq!(ns.of("lobby"), &fallback);
        let plain = Namespaces::default();
        assert_eq!(plain.of("chat:x"), &Namespace::default());
    }

    #[test]
    fn bad_namespaces_are_refused_with_their_name() {
        let hb = Duration::from_secs(20);
        for bad in ["a:b", "a b", "x..y"] {
            let err = Namespaces::new(&config(&[(bad, Namespace::default())]), hb).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
        let short = Namespace {
            presence_ttl: Duration::from_secs(5),
            ..Namespace::default()
        };
        let err = Namespaces::new(&config(&[("chat", short)]), hb).unwrap_err();
        assert!(err.contains("presence_ttl"), "{err}");
    }

    #[test]
    fn publish_policies() {
        let member = Standing {
            server: false,
            moderator: false,
            member: true,
        };
        let moderator = Standing {
            moderator: true,
            member: false,
            ..member
        };
        let stranger = Standing {
            member: false,
            ..member
        };
        let server = Standing {
            server: true,
            ..stranger
        };
        use PublishPolicy::*;
        assert!(Anyone.allows(stranger));
        assert!(Members.allows(member) && Members.allows(moderator) && !Members.allows(stranger));
        assert!(Moderators.allows(moderator) && !Moderators.allows(member));
        assert!(!Server.allows(moderator) && Server.allows(server));
    }
}
