//! Bytes → NFC text. (Being written.)
use super::IngestError;
use crate::article::Encoding;

/// Decoded text and what was detected about the raw bytes.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub text: String,
    pub encoding: Encoding,
}

pub fn decode(_bytes: &[u8]) -> Result<Decoded, IngestError> {
    Err(IngestError::Empty)
}
