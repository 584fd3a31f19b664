//! The generator's own arithmetic: latency histograms, sequence checks
//! (loss, duplicates, reordering) and the least-squares slope. Every
//! figure `herald bench` reports comes from here, so it is unit-tested.

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

/// Latencies in microseconds, from 1 µs to 100 s at 2 significant digits
/// (HdrHistogram: constant memory, within 1 % at every percentile; small
/// enough for one per subscriber).
#[derive(Debug, Clone)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Latency(Histogram::new_with_bounds(1, 100_000_000, 2).expect("valid histogram bounds"))
    }
}

/// Percentiles of a [`Latency`], in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

impl Latency {
    /// Records one latency (clamped into the histogram's range).
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.0.saturating_record(us.max(1));
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Latency) {
        self.0.add(&other.0).expect("histograms of the same bounds");
    }

    pub fn summary(&self) -> LatencySummary {
        let h = &self.0;
        LatencySummary {
            count: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us: h.mean(),
        }
    }

    /// The histogram as base64 (HdrHistogram V2), for a worker's report.
    pub fn encode(&self) -> String {
        use base64::Engine;
        let mut bytes = Vec::new();
        V2Serializer::new()
            .serialize(&self.0, &mut bytes)
            .expect("serializing into memory");
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// The inverse of [`Latency::encode`].
    pub fn decode(text: &str) -> anyhow::Result<Latency> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD.decode(text)?;
        let h: Histogram<u64> = Deserializer::new().deserialize(&mut bytes.as_slice())?;
        let mut latency = Latency::default();
        latency.0.add(&h)?;
        Ok(latency)
    }
}

/// What the sequence checks found, summed over streams and receivers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Integrity {
    /// Distinct messages received.
    pub received: u64,
    /// Messages expected but never received.
    pub lost: u64,
    /// Messages received more than once.
    pub duplicates: u64,
    /// Messages received after a later one of the same stream.
    pub reordered: u64,
}

impl Integrity {
    pub fn add(&mut self, other: Integrity) {
        self.received += other.received;
        self.lost += other.lost;
        self.duplicates += other.duplicates;
        self.reordered += other.reordered;
    }

    /// No loss, duplicate or reordering.
    pub fn is_clean(&self) -> bool {
        self.lost == 0 && self.duplicates == 0 && self.reordered == 0
    }
}

/// One receiver's view of numbered streams (a publisher's or writer's
/// messages, numbered 0, 1, 2...): which numbers arrived, in what order.
#[derive(Debug, Default)]
pub struct Sequences {
    streams: HashMap<u32, Stream>,
}

#[derive(Debug, Default)]
struct Stream {
    /// One past the highest number received.
    next: u64,
    /// Numbers below `next` not received (yet).
    missing: BTreeSet<u64>,
    received: u64,
    duplicates: u64,
    reordered: u64,
}

impl Sequences {
    /// Message `seq` of stream `stream` arrived.
    pub fn record(&mut self, stream: u32, seq: u64) {
        let s = self.streams.entry(stream).or_default();
        if seq >= s.next {
            s.missing.extend(s.next..seq);
            s.next = seq + 1;
            s.received += 1;
        } else if s.missing.remove(&seq) {
            s.reordered += 1;
            s.received += 1;
        } else {
            s.duplicates += 1;
        }
    }

    /// The verdict, given how many messages each stream sent (`expected`:
    /// stream → count) that this receiver should have seen.
    pub fn integrity(&self, expected: &HashMap<u32, u64>) -> Integrity {
        let mut total = Integrity::default();
        for (stream, &sent) in expected {
            let s = self.streams.get(stream);
            let received = s.map_or(0, |s| s.received);
            total.received += received;
            total.lost += sent.saturating_sub(received);
            total.duplicates += s.map_or(0, |s| s.duplicates);
            total.reordered += s.map_or(0, |s| s.reordered);
        }
        // Streams nobody expected: everything in them is extra.
        for (stream, s) in &self.streams {
            if !expected.contains_key(stream) {
                total.duplicates += s.received + s.duplicates;
            }
        }
        total
    }

    /// The highest number seen per stream plus one (what a writer of
    /// `n` messages would make `n`).
    pub fn counts(&self) -> HashMap<u32, u64> {
        self.streams.iter().map(|(k, s)| (*k, s.next)).collect()
    }
}

/// The slope of the least-squares line through `points` (x, y).
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for &(x, y) in points {
        num += (x - mean_x) * (y - mean_y);
        den += (x - mean_x).powi(2);
    }
    num / den
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut l = Latency::default();
        for us in 1..=10_000u64 {
            l.record(Duration::from_micros(us));
        }
        let s = l.summary();
        assert_eq!(s.count, 10_000);
        // 2 significant digits: within 1 %.
        let near =
            |got: u64, want: u64| (got as f64 - want as f64).abs() <= want as f64 * 0.01 + 1.0;
        assert!(near(s.p50_us, 5_000), "{s:?}");
        assert!(near(s.p90_us, 9_000), "{s:?}");
        assert!(near(s.p99_us, 9_900), "{s:?}");
        assert!(near(s.p999_us, 9_990), "{s:?}");
        assert!(near(s.max_us, 10_000), "{s:?}");
        assert!((s.mean_us - 5_000.5).abs() < 10.0, "{s:?}");
    }

    #[test]
    fn histograms_merge_and_survive_encoding() {
        let (mut a, mut b) = (Latency::default(), Latency::default());
        for _ in 0..99 {
            a.record(Duration::from_micros(100));
        }
        b.record(Duration::from_millis(50));
        let b = Latency::decode(&b.encode()).unwrap();
        a.merge(&b);
        let s = a.summary();
        assert_eq!(s.count, 100);
        assert_eq!(s.p50_us, 100);
        assert!(s.max_us >= 49_500 && s.max_us <= 50_500, "{s:?}");
        // Zero and huge values are clamped, not lost.
        a.record(Duration::ZERO);
        a.record(Duration::from_secs(100_000));
        assert_eq!(a.summary().count, 102);
    }

    #[test]
    fn sequences_tell_loss_duplicates_and_reordering_apart() {
        let mut s = Sequences::default();
        for seq in [0, 1, 3, 2, 2, 5, 6] {
            s.record(7, seq);
        }
        s.record(9, 0);
        let expected = HashMap::from([(7, 8), (9, 1)]);
        let i = s.integrity(&expected);
        // Stream 7: 0 1 3 2(late) 2(dup) 5 6 of 0..8: 4 and 7 lost.
        assert_eq!(
            i,
            Integrity {
                received: 7,
                lost: 2,
                duplicates: 1,
                reordered: 1
            }
        );
        assert!(!i.is_clean());
        let mut clean = Sequences::default();
        (0..100).for_each(|n| clean.record(1, n));
        let i = clean.integrity(&HashMap::from([(1, 100)]));
        assert!(i.is_clean() && i.received == 100);
        // A stream nobody sent to is not silently accepted.
        assert_eq!(clean.integrity(&HashMap::new()).duplicates, 100);
        assert_eq!(clean.counts()[&1], 100);
    }

    #[test]
    fn slope_of_a_line() {
        let points: Vec<(f64, f64)> = (0..5)
            .map(|x| (x as f64 * 1000.0, 16e6 + x as f64 * 5120e3))
            .collect();
        assert!((slope(&points) - 5120.0).abs() < 1e-6);
    }
}
