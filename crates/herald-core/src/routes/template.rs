//! Channel templates: `category:{category}`, `user:{owner.id}`.
//!
//! A template is literal text with fields in braces, each a dotted path
//! into the document. Rendering replaces each field with the document's
//! value there — a string as is, a number or boolean as written in JSON —
//! and gives no channel when a field is missing, `null`, an object, an
//! array or an empty string, or when the result is not a valid channel name
//! (whitespace, `..`, longer than 255 bytes).
//!
//! The namespace (the text before the first `:`) must be literal, so every
//! channel a template renders is in one namespace known in advance, whose
//! policy can be checked when the rule is defined.

use herald_store::ChannelName;
use serde_json::Value;
use std::fmt;

/// Longest field path, in bytes.
const MAX_PATH: usize = 256;

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
    /// The literal namespace (`None`: channels without a `:`).
    namespace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Field(Vec<String>),
}

impl Template {
    /// Parses and checks a template.
    ///
    /// ```
    /// use herald_core::routes::Template;
    /// let t = Template::parse("user:{owner.id}").unwrap();
    /// let doc = serde_json::json!({"owner": {"id": 42}});
    /// assert_eq!(t.render(&doc).unwrap().as_str(), "user:42");
    /// assert!(t.render(&serde_json::json!({})).is_none());
    /// assert!(Template::parse("{kind}:x").is_err());
    /// ```
    pub fn parse(source: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                Some(at) if rest.as_bytes()[at] == b'}' => {
                    return Err(format!("unmatched '}}' in channel template {source:?}"));
                }
                Some(at) => {
                    if at > 0 {
                        parts.push(Part::Literal(rest[..at].to_owned()));
                    }
                    let close = rest[at..]
                        .find('}')
                        .ok_or_else(|| format!("unclosed '{{' in channel template {source:?}"))?
                        + at;
                    let path = &rest[at + 1..close];
                    parts.push(Part::Field(parse_path(path).map_err(|why| {
                        format!("field {{{path}}} of channel template {source:?}: {why}")
                    })?));
                    rest = &rest[close + 1..];
                }
                None => {
                    parts.push(Part::Literal(rest.to_owned()));
                    rest = "";
                }
            }
        }
        let namespace = match parts.first() {
            Some(Part::Literal(text)) if text.contains(':') => {
                text.split_once(':').map(|(ns, _)| ns.to_owned())
            }
            _ if parts.iter().all(|p| matches!(p, Part::Literal(_))) => {
                source.split_once(':').map(|(ns, _)| ns.to_owned())
            }
            _ => {
                return Err(format!(
                    "channel template {source:?}: its namespace (the text before the first ':') \
                     must be literal, as in \"user:{{user_id}}\""
                ));
            }
        };
        let template = Template {
            source: source.to_owned(),
            parts,
            namespace,
        };
        // Fields rendered as a plain word must give a valid channel name.
        let sample = template.fill(|_| Some("x".to_owned()));
        ChannelName::new(sample.unwrap_or_default())
            .map_err(|e| format!("channel template {source:?}: {e}"))?;
        Ok(template)
    }

    /// The channel for `doc`, if every field has a usable value there.
    #[must_use]
    pub fn render(&self, doc: &Value) -> Option<ChannelName> {
        let name = self.fill(|path| value_text(lookup(doc, path)?))?;
        ChannelName::new(name).ok()
    }

    /// The dotted paths of its fields.
    pub fn fields(&self) -> impl Iterator<Item = String> + '_ {
        self.parts.iter().filter_map(|part| match part {
            Part::Field(path) => Some(path.join(".")),
            Part::Literal(_) => None,
        })
    }

    /// The namespace of every channel it renders (`None`: no `:`).
    #[must_use]
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    fn fill(&self, mut field: impl FnMut(&[String]) -> Option<String>) -> Option<String> {
        let mut out = String::with_capacity(self.source.len() + 16);
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Field(path) => out.push_str(&field(path)?),
            }
        }
        Some(out)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn parse_path(path: &str) -> Result<Vec<String>, &'static str> {
    if path.is_empty() || path.len() > MAX_PATH {
        return Err("a field is a dotted path of 1 to 256 bytes");
    }
    let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
    if segments.iter().any(|s| {
        s.is_empty()
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }) {
        return Err("path segments are non-empty runs of letters, digits, _ and -");
    }
    Ok(segments)
}

fn lookup<'a>(doc: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(doc, |at, key| at.as_object()?.get(key))
}

fn value_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(template: &str, doc: Value) -> Option<String> {
        Template::parse(template)
            .unwrap()
            .render(&doc)
            .map(|c| c.as_str().to_owned())
    }

    #[test]
    fn fields_render_strings_numbers_and_booleans() {
        assert_eq!(
            render("category:{category}", json!({"category": "tech"})).as_deref(),
            Some("category:tech")
        );
        assert_eq!(
            render("user:{user_id}", json!({"user_id": 42})).as_deref(),
            Some("user:42")
        );
        assert_eq!(
            render("t:{a.b}-{c}", json!({"a": {"b": "x"}, "c": true})).as_deref(),
            Some("t:x-true")
        );
        assert_eq!(render("alerts", json!({})).as_deref(), Some("alerts"));
    }

    #[test]
    fn missing_or_unusable_fields_render_nothing() {
        for doc in [
            json!({}),
            json!({"category": null}),
            json!({"category": ""}),
            json!({"category": {"x": 1}}),
            json!({"category": ["a"]}),
            // Not a valid channel name once rendered.
            json!({"category": "has space"}),
            json!({"category": "a..b"}),
            json!({"category": "x".repeat(300)}),
        ] {
            assert_eq!(render("category:{category}", doc.clone()), None, "{doc}");
        }
    }

    #[test]
    fn bad_templates_are_refused_with_a_reason() {
        for (bad, why) in [
            ("{kind}:x", "literal"),
            ("x{a}:y", "literal"),
            ("c:{a", "unclosed"),
            ("c:a}", "unmatched"),
            ("c:{}", "field"),
            ("c:{a b}", "segments"),
            ("c:{a..b}", "segments"),
            ("table:{x}", "table:"),
            ("bad space:{x}", "whitespace"),
            ("", "empty"),
        ] {
            let err = Template::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        assert_eq!(
            Template::parse("chat:{room}").unwrap().namespace(),
            Some("chat")
        );
        assert_eq!(Template::parse("lobby").unwrap().namespace(), None);
    }
}
