//! Compact storage of delivery bodies. GitLab's JSON payloads shrink about fourfold with the
//! fastest deflate level, which keeps a typical row within one page: fewer pages written per
//! delivery on SQLite, and on PostgreSQL no out-of-line TOAST storage and no second compression
//! by the server. Packing happens on the request's own task, before the single writer.

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;

use crate::StoreError;

/// `body_encoding` of a packed body: raw deflate (RFC 1951).
pub(crate) const DEFLATE: &str = "deflate";
/// `body_encoding` of rows stored before packing existed.
pub(crate) const IDENTITY: &str = "identity";

/// No delivery body is larger (GitLab's maximum payload is 25 MiB); a larger unpacked body
/// means a corrupt row, not a bigger payload.
const MAX_UNPACKED: u64 = 32 * 1024 * 1024;

/// A delivery body as stored.
#[derive(Debug, Clone)]
pub struct PackedBody(Vec<u8>);

impl PackedBody {
    pub fn pack(raw: &[u8]) -> PackedBody {
        let mut encoder =
            DeflateEncoder::new(Vec::with_capacity(raw.len() / 3 + 64), Compression::fast());
        // Writing to a Vec cannot fail.
        encoder.write_all(raw).expect("deflate into memory");
        PackedBody(encoder.finish().expect("deflate into memory"))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The raw body of a stored row.
pub(crate) fn unpack(encoding: &str, stored: Vec<u8>) -> Result<Vec<u8>, StoreError> {
    match encoding {
        IDENTITY => Ok(stored),
        DEFLATE => {
            let mut raw = Vec::with_capacity(stored.len() * 4);
            DeflateDecoder::new(stored.as_slice())
                .take(MAX_UNPACKED + 1)
                .read_to_end(&mut raw)
                .map_err(|e| StoreError::Corrupt(format!("delivery body: {e}")))?;
            if raw.len() as u64 > MAX_UNPACKED {
                return Err(StoreError::Corrupt("delivery body too large".into()));
            }
            Ok(raw)
        }
        other => Err(StoreError::Corrupt(format!(
            "delivery body encoding `{other}`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip_and_shrink() {
        let raw = br#"{"object_kind":"merge_request","object_attributes":{"title":"a","description":"b"}}"#
            .repeat(50);
        let packed = PackedBody::pack(&raw);
        assert!(packed.bytes().len() * 4 < raw.len());
        assert_eq!(unpack(DEFLATE, packed.bytes().to_vec()).unwrap(), raw);
        assert_eq!(unpack(DEFLATE, PackedBody::pack(b"").0).unwrap(), b"");
        assert_eq!(unpack(IDENTITY, b"{}".to_vec()).unwrap(), b"{}");
    }

    #[test]
    fn corrupt_rows_are_errors() {
        assert!(unpack(DEFLATE, vec![0xff; 16]).is_err());
        assert!(unpack("zstd", vec![]).is_err());
    }
}
