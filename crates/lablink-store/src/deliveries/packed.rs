//! Compact storage of delivery bodies. GitLab's JSON payloads shrink about fourfold with
//! zstd's level 1, which keeps a typical row within one page: fewer pages written per delivery
//! on SQLite, and on PostgreSQL less out-of-line TOAST storage. Packing happens on the request's
//! own task, before the single writer, so its cost is on the request path: zstd packs an 8 KiB
//! payload about four times faster than deflate's fastest level at the same size (measured in
//! BENCHMARKS.md, "Webhook intake"). Rows packed with deflate before are still read.

use std::cell::RefCell;
use std::io::Read;

use flate2::read::DeflateDecoder;

use crate::StoreError;

/// `body_encoding` of a packed body: a zstd frame (RFC 8878).
pub(crate) const ZSTD: &str = "zstd";
/// `body_encoding` of rows packed with raw deflate (RFC 1951) by earlier versions.
pub(crate) const DEFLATE: &str = "deflate";
/// `body_encoding` of rows stored before packing existed.
pub(crate) const IDENTITY: &str = "identity";

/// zstd's fastest regular level: the ratio of deflate's fastest level at a fraction of its cost.
const ZSTD_LEVEL: i32 = 1;

/// No delivery body is larger (GitLab's maximum payload is 25 MiB); a larger unpacked body
/// means a corrupt row, not a bigger payload.
const MAX_UNPACKED: u64 = 32 * 1024 * 1024;

thread_local! {
    /// One compression context per thread: making one per body (hundreds of KiB allocated and
    /// cleared) would cost more than packing a typical body.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
}

/// A delivery body as stored.
#[derive(Debug, Clone)]
pub struct PackedBody(Vec<u8>);

impl PackedBody {
    pub fn pack(raw: &[u8]) -> PackedBody {
        let packed = COMPRESSOR.with(|cell| {
            let mut cell = cell.borrow_mut();
            let compressor = match cell.as_mut() {
                Some(c) => c,
                None => cell.insert(
                    zstd::bulk::Compressor::new(ZSTD_LEVEL).expect("a zstd context at level 1"),
                ),
            };
            // Compressing into memory fails only when memory does.
            compressor.compress(raw).expect("zstd into memory")
        });
        PackedBody(packed)
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The raw body of a stored row.
pub(crate) fn unpack(encoding: &str, stored: Vec<u8>) -> Result<Vec<u8>, StoreError> {
    match encoding {
        IDENTITY => Ok(stored),
        ZSTD => {
            let decoder = zstd::stream::read::Decoder::with_buffer(stored.as_slice())
                .map_err(|e| StoreError::Corrupt(format!("delivery body: {e}")))?;
            read_bounded(decoder, stored.len())
        }
        DEFLATE => read_bounded(DeflateDecoder::new(stored.as_slice()), stored.len()),
        other => Err(StoreError::Corrupt(format!(
            "delivery body encoding `{other}`"
        ))),
    }
}

/// Everything `decoder` yields, refusing more than [`MAX_UNPACKED`] bytes.
fn read_bounded(decoder: impl Read, packed_len: usize) -> Result<Vec<u8>, StoreError> {
    let mut raw = Vec::with_capacity(packed_len.saturating_mul(4));
    decoder
        .take(MAX_UNPACKED + 1)
        .read_to_end(&mut raw)
        .map_err(|e| StoreError::Corrupt(format!("delivery body: {e}")))?;
    if raw.len() as u64 > MAX_UNPACKED {
        return Err(StoreError::Corrupt("delivery body too large".into()));
    }
    Ok(raw)
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
        assert_eq!(unpack(ZSTD, packed.bytes().to_vec()).unwrap(), raw);
        assert_eq!(unpack(ZSTD, PackedBody::pack(b"").0).unwrap(), b"");
        // A second body on the same thread reuses the context and is packed on its own.
        assert_eq!(unpack(ZSTD, PackedBody::pack(b"{}").0).unwrap(), b"{}");
        assert_eq!(unpack(IDENTITY, b"{}".to_vec()).unwrap(), b"{}");
    }

    #[test]
    fn rows_packed_with_deflate_by_earlier_versions_are_read() {
        use std::io::Write;
        let raw = br#"{"object_kind":"push","ref":"refs/heads/main"}"#.repeat(20);
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&raw).unwrap();
        assert_eq!(unpack(DEFLATE, encoder.finish().unwrap()).unwrap(), raw);
    }

    #[test]
    fn corrupt_rows_are_errors() {
        assert!(unpack(DEFLATE, vec![0xff; 16]).is_err());
        assert!(unpack(ZSTD, vec![0xff; 16]).is_err());
        assert!(unpack(ZSTD, vec![]).is_err());
        assert!(unpack("brotli", vec![]).is_err());
    }

    #[test]
    fn a_row_that_unpacks_beyond_the_limit_is_refused() {
        let raw = vec![b' '; MAX_UNPACKED as usize + 1];
        let packed = PackedBody::pack(&raw);
        assert!(matches!(
            unpack(ZSTD, packed.0),
            Err(StoreError::Corrupt(_))
        ));
    }
}
