//! Permissions: what a principal may do, as `action:pattern` strings.
//!
//! | string              | grants                                            |
//! |---------------------|---------------------------------------------------|
//! | `read:orders`       | read (query, subscribe, snapshot) table `orders`  |
//! | `read:*`            | read every table                                  |
//! | `write:order_*`     | write tables whose names start with `order_`      |
//! | `publish:chat:*`    | publish to channels `chat:…`                      |
//! | `presence:room:*`   | join rooms `room:…` and see their presence        |
//! | `moderate:room:*`   | moderate and manage rooms `room:…`                |
//! | `read_hidden:users` | see the hidden fields of table `users`            |
//! | `metrics`           | read the metrics endpoint                         |
//! | `admin`             | everything                                        |
//!
//! In a pattern `*` matches any run of characters, including `:` and none.
//! Patterns are 1 to 256 bytes of `[A-Za-z0-9_:.\-@/*]`; `admin` and
//! `metrics` take no pattern.
//!
//! [`Permissions`] answers [`allows`](Permissions::allows) with a hash lookup
//! for exact patterns and a scan of the (few) wildcard patterns, so checking
//! costs the same whether a principal has two permissions or two hundred
//! exact ones.

use crate::error::PermissionError;
use crate::glob;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::str::FromStr;

/// Longest pattern accepted, in bytes.
pub const MAX_PATTERN_BYTES: usize = 256;

/// Something a principal may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Query, subscribe to, snapshot and replay a table.
    Read,
    /// Insert, update and delete documents in a table.
    Write,
    /// Publish to a channel.
    Publish,
    /// Join and see presence on a topic.
    Presence,
    /// Moderate a room: remove members, publish where moderators may,
    /// change its settings, join connections to it.
    Moderate,
    /// See a table's hidden fields.
    ReadHidden,
    /// Everything; takes no pattern.
    Admin,
    /// Read server metrics; takes no pattern.
    Metrics,
}

/// The actions that take a pattern, in [`Action::slot`] order.
const PATTERNED: [Action; 6] = [
    Action::Read,
    Action::Write,
    Action::Publish,
    Action::Presence,
    Action::Moderate,
    Action::ReadHidden,
];

impl Action {
    /// The spelling in permission strings, e.g. `"read_hidden"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Publish => "publish",
            Self::Presence => "presence",
            Self::Moderate => "moderate",
            Self::ReadHidden => "read_hidden",
            Self::Admin => "admin",
            Self::Metrics => "metrics",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "read" => Self::Read,
            "write" => Self::Write,
            "publish" => Self::Publish,
            "presence" => Self::Presence,
            "moderate" => Self::Moderate,
            "read_hidden" => Self::ReadHidden,
            "admin" => Self::Admin,
            "metrics" => Self::Metrics,
            _ => return None,
        })
    }

    /// Index into per-action tables; `None` for actions without a pattern.
    fn slot(self) -> Option<usize> {
        PATTERNED.iter().position(|&a| a == self)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One permission: an action and, except for `admin` and `metrics`, a
/// resource pattern. Parses from and prints as its string form.
///
/// ```
/// use herald_auth::{Action, Permission};
/// let p: Permission = "publish:chat:*".parse()?;
/// assert_eq!(p.action(), Action::Publish);
/// assert_eq!(p.pattern(), Some("chat:*"));
/// assert!(p.allows(Action::Publish, "chat:lobby"));
/// assert_eq!(p.to_string(), "publish:chat:*");
/// # Ok::<(), herald_auth::PermissionError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission {
    action: Action,
    pattern: Option<Box<str>>,
}

impl Permission {
    /// The action granted.
    pub fn action(&self) -> Action {
        self.action
    }

    /// The resource pattern; `None` for `admin` and `metrics`.
    pub fn pattern(&self) -> Option<&str> {
        self.pattern.as_deref()
    }

    /// Whether this one permission allows `action` on `resource`. `admin`
    /// allows everything; `metrics` allows [`Action::Metrics`] whatever the
    /// resource.
    pub fn allows(&self, action: Action, resource: &str) -> bool {
        match (self.action, &self.pattern) {
            (Action::Admin, _) => true,
            (granted, None) => granted == action,
            (granted, Some(pattern)) => {
                granted == action && glob::matches(pattern.as_bytes(), resource.as_bytes())
            }
        }
    }
}

impl FromStr for Permission {
    type Err = PermissionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, pattern) = match s.split_once(':') {
            Some((name, pattern)) => (name, Some(pattern)),
            None => (s, None),
        };
        let action = Action::parse(name).ok_or_else(|| {
            PermissionError::new(
                s,
                format!(
                    "unknown action {:?} (expected read, write, publish, presence, moderate, read_hidden, metrics or admin)",
                    crate::error::excerpt(name, 32)
                ),
            )
        })?;
        let takes_pattern = action.slot().is_some();
        let pattern = match (takes_pattern, pattern) {
            (false, None) => None,
            (false, Some(_)) => {
                return Err(PermissionError::new(
                    s,
                    format!("{action} takes no pattern; write just \"{action}\""),
                ));
            }
            (true, None) => {
                return Err(PermissionError::new(
                    s,
                    format!("{action} needs a pattern, e.g. \"{action}:orders\" or \"{action}:*\""),
                ));
            }
            (true, Some(pattern)) => Some(check_pattern(s, pattern)?),
        };
        Ok(Self { action, pattern })
    }
}

fn check_pattern(whole: &str, pattern: &str) -> Result<Box<str>, PermissionError> {
    if pattern.is_empty() {
        return Err(PermissionError::new(
            whole,
            "the pattern after ':' is empty (use \"*\" for everything)",
        ));
    }
    if pattern.len() > MAX_PATTERN_BYTES {
        return Err(PermissionError::new(
            whole,
            format!(
                "the pattern is {} bytes; the limit is {MAX_PATTERN_BYTES}",
                pattern.len()
            ),
        ));
    }
    if let Some(bad) = pattern
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || "_:.-@/*".contains(c)))
    {
        return Err(PermissionError::new(
            whole,
            format!(
                "character {bad:?} is not allowed in a pattern (allowed: letters, digits and _ : . - @ / *)"
            ),
        ));
    }
    Ok(pattern.into())
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pattern {
            Some(pattern) => write!(f, "{}:{pattern}", self.action),
            None => f.write_str(self.action.as_str()),
        }
    }
}

impl Serialize for Permission {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The patterns granted for one action, split by how they are matched.
#[derive(Debug, Clone, Default)]
struct Grants {
    /// A pattern exactly `*`.
    every: bool,
    /// Patterns without `*`: a hash lookup.
    exact: HashSet<Box<str>>,
    /// Patterns with `*` (other than `*` alone): a scan.
    globs: Vec<Box<str>>,
}

/// A set of permissions, indexed for [`allows`](Self::allows).
///
/// ```
/// use herald_auth::{Action, Permissions};
/// let p = Permissions::parse(["read:*", "publish:chat:*", "write:orders"])?;
/// assert!(p.allows(Action::Read, "anything"));
/// assert!(p.allows(Action::Publish, "chat:lobby"));
/// assert!(!p.allows(Action::Publish, "alerts"));
/// assert!(p.allows(Action::Write, "orders"));
/// assert!(!p.allows(Action::Write, "orders_archive"));
/// assert!(p.allows_every(Action::Read));
/// # Ok::<(), herald_auth::PermissionError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Permissions {
    /// Every permission, deduplicated and sorted: what [`iter`](Self::iter)
    /// and serialization show.
    list: BTreeSet<Permission>,
    admin: bool,
    metrics: bool,
    /// Indexed by [`Action::slot`].
    grants: [Grants; PATTERNED.len()],
}

impl Permissions {
    /// Parses each string as a [`Permission`]; the first bad one is the error.
    pub fn parse<I, S>(items: I) -> Result<Self, PermissionError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        items
            .into_iter()
            .map(|s| s.as_ref().parse::<Permission>())
            .collect()
    }

    /// Everything: the same as `["admin"]`.
    pub fn all() -> Self {
        [Permission {
            action: Action::Admin,
            pattern: None,
        }]
        .into_iter()
        .collect()
    }

    /// Nothing.
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether `action` on `resource` is allowed. `admin` allows everything.
    pub fn allows(&self, action: Action, resource: &str) -> bool {
        if self.admin {
            return true;
        }
        let Some(slot) = action.slot() else {
            return action == Action::Metrics && self.metrics;
        };
        let grants = &self.grants[slot];
        grants.every
            || grants.exact.contains(resource)
            || grants
                .globs
                .iter()
                .any(|g| glob::matches(g.as_bytes(), resource.as_bytes()))
    }

    /// Whether `action` is allowed on every resource: a pattern exactly `*`,
    /// or `admin`. Lets callers skip per-resource checks.
    pub fn allows_every(&self, action: Action) -> bool {
        self.admin
            || match action.slot() {
                Some(slot) => self.grants[slot].every,
                None => action == Action::Metrics && self.metrics,
            }
    }

    /// Whether this set includes `admin`.
    pub fn is_admin(&self) -> bool {
        self.admin
    }

    /// Whether this set grants nothing.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The permissions, sorted and without duplicates.
    pub fn iter(&self) -> impl Iterator<Item = &Permission> {
        self.list.iter()
    }

    /// The permissions as strings, sorted and without duplicates.
    pub fn to_strings(&self) -> Vec<String> {
        self.list.iter().map(Permission::to_string).collect()
    }

    fn insert(&mut self, permission: Permission) {
        match (permission.action.slot(), permission.pattern.as_deref()) {
            (Some(slot), Some(pattern)) => {
                let grants = &mut self.grants[slot];
                if pattern == "*" {
                    grants.every = true;
                } else if pattern.contains('*') {
                    if !grants.globs.iter().any(|g| **g == *pattern) {
                        grants.globs.push(pattern.into());
                    }
                } else {
                    grants.exact.insert(pattern.into());
                }
            }
            _ if permission.action == Action::Admin => self.admin = true,
            _ => self.metrics = true,
        }
        self.list.insert(permission);
    }
}

impl FromIterator<Permission> for Permissions {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        let mut set = Self::default();
        for permission in iter {
            set.insert(permission);
        }
        set
    }
}

/// Two sets are equal when they hold the same permissions.
impl PartialEq for Permissions {
    fn eq(&self, other: &Self) -> bool {
        self.list == other.list
    }
}

impl Eq for Permissions {}

/// Serializes as a sorted array of permission strings.
impl Serialize for Permissions {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(&self.list)
    }
}

/// Deserializes from an array of permission strings.
impl<'de> Deserialize<'de> for Permissions {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Vec::<Permission>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> Permissions {
        Permissions::parse(items).unwrap()
    }

    fn error(s: &str) -> String {
        s.parse::<Permission>().unwrap_err().to_string()
    }

    #[test]
    fn every_documented_form_parses_and_prints_back() {
        for s in [
            "read:orders",
            "read:*",
            "publish:chat:*",
            "write:order_*",
            "read_hidden:users",
            "presence:room:*",
            "metrics",
            "admin",
            "read:a.b-c@d/e_F9",
        ] {
            assert_eq!(s.parse::<Permission>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn bad_strings_are_refused_with_the_reason() {
        assert!(error("reed:orders").contains("unknown action \"reed\""));
        assert!(error("").contains("unknown action \"\""));
        assert!(error("read").contains("read needs a pattern"));
        assert!(error("read:").contains("empty"));
        assert!(error("admin:x").contains("admin takes no pattern"));
        assert!(error("metrics:*").contains("metrics takes no pattern"));
        assert!(error("read:a b").contains("character ' '"));
        assert!(error("read:ü").contains("character 'ü'"));
        assert!(error("read:a?").contains("character '?'"));
        assert!(error(&format!("read:{}", "a".repeat(257))).contains("257 bytes"));
        assert!(
            format!("read:{}", "a".repeat(256))
                .parse::<Permission>()
                .is_ok()
        );
        // The offending string is named, cut short if it is long.
        assert!(error("write:a b").starts_with("invalid permission \"write:a b\""));
        assert!(error(&"x".repeat(1000)).len() < 300);
    }

    #[test]
    fn exact_patterns_match_only_that_resource_and_action() {
        let p = set(&["read:orders"]);
        assert!(p.allows(Action::Read, "orders"));
        assert!(!p.allows(Action::Read, "orders2"));
        assert!(!p.allows(Action::Read, "order"));
        assert!(!p.allows(Action::Write, "orders"));
        assert!(!p.allows(Action::ReadHidden, "orders"));
        assert!(!p.allows_every(Action::Read));
    }

    #[test]
    fn globs_match_across_colons() {
        let p = set(&["publish:chat:*", "write:order_*", "presence:*:lobby"]);
        assert!(p.allows(Action::Publish, "chat:"));
        assert!(p.allows(Action::Publish, "chat:room:42"));
        assert!(!p.allows(Action::Publish, "chat"));
        assert!(!p.allows(Action::Publish, "alerts:chat:x"));
        assert!(p.allows(Action::Write, "order_2024"));
        assert!(!p.allows(Action::Write, "orders"));
        assert!(p.allows(Action::Presence, "game:7:lobby"));
        assert!(!p.allows_every(Action::Publish));
    }

    #[test]
    fn star_alone_allows_every_resource_of_that_action_only() {
        let p = set(&["read:*"]);
        assert!(p.allows(Action::Read, ""));
        assert!(p.allows(Action::Read, "anything:at:all"));
        assert!(p.allows_every(Action::Read));
        assert!(!p.allows(Action::Write, "x"));
        assert!(!p.allows_every(Action::Write));
        // A glob that happens to match everything is still not "every".
        assert!(!set(&["read:**"]).allows_every(Action::Read));
    }

    #[test]
    fn admin_allows_everything() {
        for p in [
            Permissions::all(),
            set(&["admin"]),
            set(&["read:x", "admin"]),
        ] {
            assert!(p.is_admin());
            for action in PATTERNED
                .into_iter()
                .chain([Action::Admin, Action::Metrics])
            {
                assert!(p.allows(action, "whatever"));
                assert!(p.allows_every(action));
            }
        }
        assert_eq!(Permissions::all(), set(&["admin"]));
    }

    #[test]
    fn metrics_is_its_own_grant() {
        let p = set(&["metrics"]);
        assert!(p.allows(Action::Metrics, ""));
        assert!(p.allows_every(Action::Metrics));
        assert!(!p.allows(Action::Admin, ""));
        assert!(!p.allows(Action::Read, "x"));
        assert!(!set(&["read:*"]).allows(Action::Metrics, ""));
    }

    #[test]
    fn none_allows_nothing() {
        let p = Permissions::none();
        assert!(p.is_empty());
        assert!(!p.is_admin());
        for action in PATTERNED
            .into_iter()
            .chain([Action::Admin, Action::Metrics])
        {
            assert!(!p.allows(action, "x"));
            assert!(!p.allows_every(action));
        }
    }

    #[test]
    fn sets_are_deduplicated_sorted_and_serialize_as_strings() {
        let p = set(&["write:b", "read:a", "write:b", "publish:c:*", "publish:c:*"]);
        assert_eq!(p.to_strings(), ["read:a", "write:b", "publish:c:*"]);
        assert_eq!(p.iter().count(), 3);
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, r#"["read:a","write:b","publish:c:*"]"#);
        let back: Permissions = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
        assert!(serde_json::from_str::<Permissions>(r#"["read"]"#).is_err());
    }

    #[test]
    fn the_first_bad_item_fails_the_whole_set() {
        let err = Permissions::parse(["read:a", "bogus", "also bad"]).unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
    }
}
