//! `resume` (being written).
use crate::{Common, report::Report};
use clap::Args;
use serde::Serialize;

/// `herald bench resume`.
#[derive(Debug, Clone, Args, Serialize)]
pub struct ResumeArgs {}

pub async fn resume(_common: &Common, _args: ResumeArgs) -> anyhow::Result<Option<Report>> {
    anyhow::bail!("resume is not written yet")
}
