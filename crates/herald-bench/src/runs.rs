//! Several runs of one scenario, and how far their figures spread: the
//! check that a result is reproducible, in one command (`--runs 3`).

use crate::report::Report;
use serde_json::{Value, json};
use std::path::Path;

/// One figure across the runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Spread {
    pub name: String,
    /// The figure of each run, in run order.
    pub values: Vec<f64>,
}

impl Spread {
    pub fn min(&self) -> f64 {
        self.values.iter().copied().fold(f64::INFINITY, f64::min)
    }

    pub fn max(&self) -> f64 {
        self.values
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max)
    }

    /// The middle value (the mean of the two middle ones for an even
    /// count).
    pub fn median(&self) -> f64 {
        let mut sorted = self.values.clone();
        sorted.sort_by(f64::total_cmp);
        let mid = sorted.len() / 2;
        match sorted.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => sorted[mid],
            _ => (sorted[mid - 1] + sorted[mid]) / 2.0,
        }
    }

    /// `(max − min) / median`, in percent: how far apart the runs are.
    /// Zero when every run agrees, including when all are zero; relative to
    /// the largest magnitude when the median is zero (`lost` of 0, 0, 3 is
    /// 100 %, not infinite).
    pub fn range_pct(&self) -> f64 {
        let (min, max, median) = (self.min(), self.max(), self.median());
        if max == min {
            return 0.0;
        }
        let scale = if median == 0.0 {
            max.abs().max(min.abs())
        } else {
            median.abs()
        };
        100.0 * (max - min) / scale
    }
}

/// The runs of one scenario.
#[derive(Debug)]
pub struct Runs {
    pub reports: Vec<Report>,
}

impl Runs {
    /// Every numeric figure the runs share, in the order of the first run.
    pub fn spreads(&self) -> Vec<Spread> {
        let Some(first) = self.reports.first() else {
            return Vec::new();
        };
        first
            .results
            .iter()
            .filter_map(|(name, _)| {
                let values = self
                    .reports
                    .iter()
                    .map(|r| r.get(name).and_then(Value::as_f64))
                    .collect::<Option<Vec<f64>>>()?;
                Some(Spread {
                    name: name.clone(),
                    values,
                })
            })
            .collect()
    }

    /// The human summary: each figure's runs, median and spread.
    pub fn table(&self) -> String {
        let spreads = self.spreads();
        let width = spreads.iter().map(|s| s.name.len()).max().unwrap_or(0);
        let mut out = format!("{} runs\n", self.reports.len());
        for s in &spreads {
            let runs: Vec<String> = s.values.iter().map(|v| short(*v)).collect();
            out += &format!(
                "  {:<width$}  median {:>10}  range {:>5.1} %  ({})\n",
                s.name,
                short(s.median()),
                s.range_pct(),
                runs.join(", ")
            );
        }
        out
    }

    /// `{"scenario", "params", "runs": [results...], "spread": {name:
    /// {min, median, max, range_pct}}}`.
    pub fn json(&self) -> Value {
        let Some(first) = self.reports.first() else {
            return Value::Null;
        };
        let spread: serde_json::Map<String, Value> = self
            .spreads()
            .iter()
            .map(|s| {
                let figures = json!({
                    "min": s.min(),
                    "median": s.median(),
                    "max": s.max(),
                    "range_pct": s.range_pct(),
                });
                (s.name.clone(), figures)
            })
            .collect();
        let runs: Vec<Value> = self
            .reports
            .iter()
            .map(|r| r.json()["results"].clone())
            .collect();
        json!({
            "scenario": first.scenario,
            "params": first.params,
            "runs": runs,
            "spread": spread,
        })
    }

    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, serde_json::to_vec_pretty(&self.json())?)
    }
}

/// A figure as the tables show it: two decimals unless it is whole.
fn short(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(rate: f64, lost: u64) -> Report {
        let mut r = Report::new("fanout", json!({"rate": 100}));
        r.add("deliveries_per_s", rate)
            .add("note", "text")
            .add("lost", lost);
        r
    }

    #[test]
    fn spreads_take_min_median_max_of_numeric_figures() {
        let runs = Runs {
            reports: vec![report(90.0, 0), report(110.0, 0), report(100.0, 0)],
        };
        let spreads = runs.spreads();
        // The text figure is left out; order follows the first run.
        let names: Vec<&str> = spreads.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["deliveries_per_s", "lost"]);
        let rate = &spreads[0];
        assert_eq!(rate.values, [90.0, 110.0, 100.0]);
        assert_eq!(
            (rate.min(), rate.median(), rate.max()),
            (90.0, 100.0, 110.0)
        );
        assert!((rate.range_pct() - 20.0).abs() < 1e-9);
        // All zero: no spread, not a division by zero.
        assert_eq!(spreads[1].range_pct(), 0.0);
    }

    #[test]
    fn an_even_count_takes_the_mean_of_the_middle_two() {
        let s = Spread {
            name: "x".into(),
            values: vec![4.0, 1.0, 3.0, 2.0],
        };
        assert_eq!(s.median(), 2.5);
        assert!((s.range_pct() - 120.0).abs() < 1e-9);
    }

    #[test]
    fn a_zero_median_with_a_spread_is_relative_to_the_largest_value() {
        let s = Spread {
            name: "lost".into(),
            values: vec![0.0, 0.0, 3.0],
        };
        assert_eq!(s.median(), 0.0);
        assert_eq!(s.range_pct(), 100.0);
        assert!(s.range_pct().is_finite());
    }

    #[test]
    fn table_and_json_show_every_run() {
        let runs = Runs {
            reports: vec![report(90.0, 0), report(110.0, 1)],
        };
        let table = runs.table();
        assert!(table.starts_with("2 runs\n"), "{table}");
        assert!(table.contains("(90, 110)"), "{table}");
        let doc = runs.json();
        assert_eq!(doc["runs"][1]["lost"], 1);
        assert_eq!(doc["spread"]["deliveries_per_s"]["median"], 100.0);
        assert_eq!(doc["spread"]["lost"]["max"], 1.0);
        assert_eq!(doc["params"]["rate"], 100);
    }
}
