//! placeholder until the ingest branch lands
use super::{Decoded, IngestError, IngestOptions};
use crate::article::Article;
pub fn parse(_stem: &str, _d: Decoded, _o: &IngestOptions) -> Result<Article, IngestError> {
    Err(IngestError::Empty)
}
