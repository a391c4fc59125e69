//! placeholder until the ingest branch lands
use super::{Decoded, IngestError};
use crate::article::Article;
pub fn parse(_stem: &str, _d: Decoded) -> Result<Article, IngestError> {
    Err(IngestError::Empty)
}
