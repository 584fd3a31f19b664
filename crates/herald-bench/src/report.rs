//! A run's result: printed as a table for people, written as JSON for
//! BENCHMARKS.md and comparisons between runs.

use serde::Serialize;
use serde_json::Value;
use std::path::Path;

/// One scenario's result: its parameters and its figures, in order.
#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    /// The parameters, as given (with defaults filled in).
    pub params: Value,
    /// Named figures, in the order they are printed.
    pub results: Vec<(String, Value)>,
}

impl Report {
    pub fn new(scenario: &'static str, params: impl Serialize) -> Report {
        Report {
            scenario,
            params: serde_json::to_value(params).unwrap_or(Value::Null),
            results: Vec::new(),
        }
    }

    /// Adds a figure.
    pub fn add(&mut self, name: &str, value: impl Serialize) -> &mut Report {
        self.results.push((
            name.to_owned(),
            serde_json::to_value(value).unwrap_or(Value::Null),
        ));
        self
    }

    /// Adds the latency percentiles, in milliseconds.
    pub fn latency(&mut self, latency: &crate::stats::Latency) -> &mut Report {
        let summary = latency.summary();
        self.add("latency_p50_ms", summary.p50_us as f64 / 1000.0)
            .add("latency_p90_ms", summary.p90_us as f64 / 1000.0)
            .add("latency_p99_ms", summary.p99_us as f64 / 1000.0)
            .add("latency_p999_ms", summary.p999_us as f64 / 1000.0)
            .add("latency_max_ms", summary.max_us as f64 / 1000.0)
    }

    /// Adds the deliveries received in `elapsed`, and per second of the
    /// server's CPU.
    pub fn deliveries(
        &mut self,
        deliveries: u64,
        elapsed: std::time::Duration,
        usage: &crate::target::Usage,
    ) -> &mut Report {
        self.add("deliveries", deliveries)
            .add(
                "deliveries_per_s",
                deliveries as f64 / elapsed.as_secs_f64(),
            )
            .add(
                "deliveries_per_server_cpu_s",
                deliveries as f64 / usage.server_cpu_s.max(1e-9),
            )
    }

    /// Adds what the run cost: server and generator CPU, server memory.
    pub fn usage(&mut self, usage: &crate::target::Usage) -> &mut Report {
        self.add("server_cpu_s", usage.server_cpu_s)
            .add("generator_cpu_s", usage.generator_cpu_s)
            .add(
                "server_rss_mib",
                usage.server_rss_bytes as f64 / (1 << 20) as f64,
            )
    }

    /// Adds the sequence checks' verdict.
    pub fn integrity(&mut self, integrity: &crate::stats::Integrity) -> &mut Report {
        self.add("lost", integrity.lost)
            .add("duplicates", integrity.duplicates)
            .add("reordered", integrity.reordered)
    }

    /// The figure `name`, if recorded.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.results.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The human summary.
    pub fn table(&self) -> String {
        let width = self.results.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        let mut out = format!("herald bench {}  {}\n", self.scenario, self.params);
        for (name, value) in &self.results {
            let shown = match value {
                Value::Number(n) if n.is_f64() => format!("{:.2}", n.as_f64().unwrap_or(0.0)),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out += &format!("  {name:<width$}  {shown}\n");
        }
        out
    }

    /// The JSON document: `{"scenario", "params", "results": {name: value}}`.
    pub fn json(&self) -> Value {
        let results: serde_json::Map<String, Value> = self.results.iter().cloned().collect();
        serde_json::json!({"scenario": self.scenario, "params": self.params, "results": results})
    }

    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, serde_json::to_vec_pretty(&self.json())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_json_hold_every_figure_in_order() {
        let mut r = Report::new("fanout", serde_json::json!({"subscribers": 10}));
        r.add("deliveries_per_s", 1234.5)
            .add("lost", 0)
            .add("note", "ok");
        let table = r.table();
        assert!(table.contains("deliveries_per_s  1234.50"), "{table}");
        assert!(table.find("lost").unwrap() < table.find("note").unwrap());
        assert_eq!(r.json()["results"]["lost"], 0);
        assert_eq!(r.get("note"), Some(&Value::from("ok")));
    }
}
