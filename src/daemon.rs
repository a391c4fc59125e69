//! The daemon (being written).
use crate::config::Config;
use anyhow::Result;

pub fn run(_cfg: Config) -> Result<()> {
    anyhow::bail!("`feedwire run` is not available yet")
}
