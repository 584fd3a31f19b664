//! Benchmark documents, shared by `benches/log.rs` and `examples/append.rs`.

use serde_json::{Value, json};

/// Pseudo-random hex text, about as compressible as real JSON text, so the
/// engine's compression does not flatter the figures.
pub fn hex_text(seed: u64, len: usize) -> String {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b"0123456789abcdef"[(state & 15) as usize])
        })
        .collect()
}

/// Paddings made once, so building documents costs the benchmark little.
pub fn paddings(doc_size: usize) -> Vec<String> {
    (0..256)
        .map(|seed| hex_text(seed, doc_size.saturating_sub(70)))
        .collect()
}

/// A document of about `doc_size` bytes (the size `pads` was made for).
pub fn doc(id: u64, pads: &[String]) -> Value {
    let pad = &pads[(id % pads.len() as u64) as usize];
    json!({"id": format!("doc-{id:012}"), "tenant": id % 100, "status": "open", "pad": pad})
}
