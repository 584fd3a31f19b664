//! Restricting a subscription to updates that touched given fields.

/// The fields a subscription cares about; an update is relevant when one of its
/// changed fields overlaps one of these.
///
/// Fields are dotted paths. `a` and `a.b` overlap both ways: changing `a`
/// replaces `a.b`, and changing `a.b` changes `a`.
///
/// ```
/// use herald_filter::ChangedFields;
/// let watch = ChangedFields::new(vec!["status".into(), "address.city".into()]);
/// assert!(watch.touches(&["status".into()]));
/// assert!(watch.touches(&["address".into()]));
/// assert!(!watch.touches(&["address.zip".into(), "name".into()]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedFields {
    fields: Vec<String>,
}

impl ChangedFields {
    /// Watches the given dotted field paths.
    pub fn new(fields: Vec<String>) -> Self {
        Self { fields }
    }

    /// The watched fields.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// Whether an update that changed `changed` touched a watched field.
    pub fn touches(&self, changed: &[String]) -> bool {
        self.fields
            .iter()
            .any(|field| changed.iter().any(|c| overlaps(field, c)))
    }
}

/// Equal, or one is a dotted prefix of the other.
fn overlaps(a: &str, b: &str) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    long.strip_prefix(short)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_must_end_at_a_dot() {
        assert!(overlaps("a", "a"));
        assert!(overlaps("a", "a.b"));
        assert!(overlaps("a.b", "a"));
        assert!(!overlaps("a", "ab"));
        assert!(!overlaps("a.b", "a.c"));
    }

    #[test]
    fn nothing_watched_touches_nothing() {
        assert!(!ChangedFields::new(vec![]).touches(&["a".into()]));
        assert!(!ChangedFields::new(vec!["a".into()]).touches(&[]));
    }
}
