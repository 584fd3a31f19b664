//! The `*` wildcard matcher behind permission patterns.

/// Whether `text` matches `pattern`, where `*` matches any run of bytes
/// (including `:` and the empty run) and every other byte matches itself.
///
/// Iterative, remembering only the last `*`: on a mismatch it retries from
/// one byte further after that star. Earlier stars never need revisiting
/// (anything they could absorb, the last one can), so the worst case is
/// O(pattern × text) with no recursion, whatever the input.
pub(crate) fn matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // (pattern index just after the last star, text index it resumes from)
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p + 1, t));
                p += 1;
            }
            Some(&c) if c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((after_star, from)) => {
                    star = Some((after_star, from + 1));
                    p = after_star;
                    t = from + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    fn m(pattern: &str, text: &str) -> bool {
        matches(pattern.as_bytes(), text.as_bytes())
    }

    #[test]
    fn literal_patterns_match_only_themselves() {
        assert!(m("orders", "orders"));
        assert!(!m("orders", "order"));
        assert!(!m("orders", "orders2"));
        assert!(m("", ""));
        assert!(!m("", "a"));
    }

    #[test]
    fn star_matches_any_run_including_colons_and_nothing() {
        assert!(m("*", ""));
        assert!(m("*", "a:b:c"));
        assert!(m("chat:*", "chat:"));
        assert!(m("chat:*", "chat:room:1"));
        assert!(!m("chat:*", "chat"));
        assert!(m("order_*", "order_42"));
        assert!(m("*_log", "audit_log"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(m("a*b*c", "abc"));
        assert!(!m("a*b*c", "acb"));
        assert!(m("a**b", "ab"));
        assert!(m("*a*", "bab"));
        assert!(!m("*a*", "bbb"));
    }

    #[test]
    fn backtracking_to_the_last_star_finds_late_matches() {
        assert!(m("*ab", "aab"));
        assert!(m("a*ab", "aaab"));
        assert!(m("*:x:*:y", "q:x:r:x:s:y"));
    }

    #[test]
    fn pathological_input_finishes_quickly() {
        // Exponential for naive recursive matchers; quadratic bound here.
        let pattern = "a*".repeat(100) + "b";
        let text = "a".repeat(10_000);
        let started = std::time::Instant::now();
        assert!(!m(&pattern, &text));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    /// Compares against a naive dynamic-programming matcher on every
    /// pattern and text over a small alphabet.
    #[test]
    fn agrees_with_a_naive_model() {
        fn naive(p: &[u8], t: &[u8]) -> bool {
            let mut dp = vec![vec![false; t.len() + 1]; p.len() + 1];
            dp[0][0] = true;
            for i in 1..=p.len() {
                for j in 0..=t.len() {
                    dp[i][j] = if p[i - 1] == b'*' {
                        dp[i - 1][j] || (j > 0 && dp[i][j - 1])
                    } else {
                        j > 0 && p[i - 1] == t[j - 1] && dp[i - 1][j - 1]
                    };
                }
            }
            dp[p.len()][t.len()]
        }
        fn all(alphabet: &[u8], max_len: usize) -> Vec<Vec<u8>> {
            let mut out = vec![vec![]];
            let mut frontier = vec![vec![]];
            for _ in 0..max_len {
                let mut next = vec![];
                for s in &frontier {
                    for &c in alphabet {
                        let mut s = s.clone();
                        s.push(c);
                        next.push(s);
                    }
                }
                out.extend(next.iter().cloned());
                frontier = next;
            }
            out
        }
        let patterns = all(b"ab*", 5);
        let texts = all(b"ab", 6);
        for p in &patterns {
            for t in &texts {
                assert_eq!(matches(p, t), naive(p, t), "{p:?} vs {t:?}");
            }
        }
    }
}
