//! `tables` (being written).
use crate::{Common, report::Report};
use clap::Args;
use serde::Serialize;

/// `herald bench tables`.
#[derive(Debug, Clone, Args, Serialize)]
pub struct TablesArgs {}

pub async fn tables(_common: &Common, _args: TablesArgs) -> anyhow::Result<Option<Report>> {
    anyhow::bail!("tables is not written yet")
}
