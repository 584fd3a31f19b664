//! Positions in the change log and in a document's history.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The position of an event in the change log.
///
/// Offsets are strictly increasing and never reused, also across crashes. They
/// may have gaps (after a crash, the log skips to a reserved floor), so never
/// compute "the next offset" by adding one to an offset you were given.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Offset(pub u64);

impl Offset {
    /// The position before any event: resuming from it replays the whole log.
    pub const ZERO: Offset = Offset(0);

    /// The position right after this one (the last one stays: no event
    /// ever has it, and a client may send it).
    #[must_use]
    pub fn next(self) -> Offset {
        Offset(self.0.saturating_add(1))
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The identity of a log's history.
///
/// An epoch is created with the data directory and changes only when history
/// is lost (the directory was wiped). A resume token from another epoch can
/// never be honoured. On the wire it is a 16-digit lower-case hex string, so
/// JavaScript clients do not lose precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Epoch(pub u64);

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl FromStr for Epoch {
    type Err = ParsePositionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 16 {
            return Err(ParsePositionError("epoch must be 16 hex digits"));
        }
        u64::from_str_radix(s, 16)
            .map(Epoch)
            .map_err(|_| ParsePositionError("epoch must be 16 hex digits"))
    }
}

impl Serialize for Epoch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Epoch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Milliseconds since the Unix epoch. Event timestamps never go backwards
/// along the log, even if the wall clock does.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The current wall-clock time.
    #[must_use]
    pub fn now() -> Timestamp {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        Timestamp(u64::try_from(ms).unwrap_or(u64::MAX))
    }
}

/// A document's version: 1 when created, +1 on every write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Version(pub u64);

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a consumer stands in the log: `(epoch, offset)`.
///
/// Its text form `"<epoch>:<offset>"` is the SSE `id:` of each event and is
/// accepted wherever a position is resumed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResumeToken {
    /// The history the offset belongs to.
    pub epoch: Epoch,
    /// The last offset the consumer has seen.
    pub offset: Offset,
}

impl fmt::Display for ResumeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.epoch, self.offset)
    }
}

impl FromStr for ResumeToken {
    type Err = ParsePositionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (epoch, offset) = s
            .split_once(':')
            .ok_or(ParsePositionError("resume token must be <epoch>:<offset>"))?;
        let offset = offset
            .parse()
            .map_err(|_| ParsePositionError("offset must be an unsigned integer"))?;
        Ok(ResumeToken {
            epoch: epoch.parse()?,
            offset: Offset(offset),
        })
    }
}

/// A position that could not be parsed; the message says what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsePositionError(pub &'static str);

impl fmt::Display for ParsePositionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for ParsePositionError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_token_round_trips() {
        let t = ResumeToken {
            epoch: Epoch(0xdead_beef_0000_0001),
            offset: Offset(42),
        };
        assert_eq!(t.to_string(), "deadbeef00000001:42");
        assert_eq!(t.to_string().parse::<ResumeToken>(), Ok(t));
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        for bad in [
            "",
            "abc",
            "deadbeef00000001",
            "xyz:1",
            "deadbeef00000001:-1",
            "0:1",
        ] {
            assert!(bad.parse::<ResumeToken>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn epoch_serializes_as_hex_string() {
        let json = serde_json::to_string(&Epoch(255)).unwrap();
        assert_eq!(json, "\"00000000000000ff\"");
        assert_eq!(serde_json::from_str::<Epoch>(&json).unwrap(), Epoch(255));
    }
}
