//! Compact storage of delivery bodies. GitLab's JSON payloads shrink to about two fifths with
//! LZ4, which keeps a typical row within one page: fewer pages written per delivery on SQLite,
//! and on PostgreSQL a row that stays in the table instead of going out of line to TOAST.
//! Packing happens on the request's own task, so its cost is on the request path: LZ4 packs an
//! 8 KiB payload in about 10 µs where zstd's level 1 took 25 µs (a tenth of the machine's CPU at
//! full intake; measured in BENCHMARKS.md, "Webhook intake"), for 3.3 KB instead of 2.2 KB.
//! Rows packed with zstd or deflate by earlier versions are read only to repack them as LZ4
//! ([`Db::repack_legacy_delivery_bodies`](crate::Db::repack_legacy_delivery_bodies), a one-time
//! background task queued by migration 0010); their decoders are pure Rust and go once every
//! database has run it.

use std::io::Read;

use flate2::read::DeflateDecoder;

use crate::StoreError;

/// `body_encoding` of a packed body: an LZ4 block after its unpacked size as a little-endian
/// `u32` (`lz4_flex`'s size-prepended block format).
pub(crate) const LZ4: &str = "lz4";
/// `body_encoding` of rows packed as zstd frames (RFC 8878) by earlier versions.
pub(crate) const ZSTD: &str = "zstd";
/// `body_encoding` of rows packed with raw deflate (RFC 1951) by earlier versions.
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
        PackedBody(lz4_flex::block::compress_prepend_size(raw))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The raw body of a stored row.
pub(crate) fn unpack(encoding: &str, stored: Vec<u8>) -> Result<Vec<u8>, StoreError> {
    match encoding {
        IDENTITY => Ok(stored),
        LZ4 => unpack_lz4(&stored),
        ZSTD => {
            let decoder = ruzstd::decoding::StreamingDecoder::new(stored.as_slice())
                .map_err(|e| StoreError::Corrupt(format!("delivery body: {e}")))?;
            read_bounded(decoder, stored.len())
        }
        DEFLATE => read_bounded(DeflateDecoder::new(stored.as_slice()), stored.len()),
        other => Err(StoreError::Corrupt(format!(
            "delivery body encoding `{other}`"
        ))),
    }
}

/// The size prefix is checked before anything is allocated: a corrupt one must not make a row
/// ask for gigabytes.
fn unpack_lz4(stored: &[u8]) -> Result<Vec<u8>, StoreError> {
    let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("delivery body: {e}"));
    let (size, _) = lz4_flex::block::uncompressed_size(stored).map_err(|e| corrupt(&e))?;
    if size as u64 > MAX_UNPACKED {
        return Err(StoreError::Corrupt("delivery body too large".into()));
    }
    lz4_flex::block::decompress_size_prepended(stored).map_err(|e| corrupt(&e))
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
        assert_eq!(unpack(LZ4, packed.bytes().to_vec()).unwrap(), raw);
        assert_eq!(unpack(LZ4, PackedBody::pack(b"").0).unwrap(), b"");
        assert_eq!(unpack(IDENTITY, b"{}".to_vec()).unwrap(), b"{}");
    }

    #[test]
    fn rows_packed_by_earlier_versions_are_read() {
        use std::io::Write;
        let raw = br#"{"object_kind":"push","ref":"refs/heads/main"}"#.repeat(20);
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&raw).unwrap();
        assert_eq!(unpack(DEFLATE, encoder.finish().unwrap()).unwrap(), raw);
        let zstd_frame = ruzstd::encoding::compress_to_vec(
            raw.as_slice(),
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        assert_eq!(unpack(ZSTD, zstd_frame).unwrap(), raw);
    }

    #[test]
    fn corrupt_rows_are_errors() {
        for encoding in [LZ4, ZSTD, DEFLATE] {
            assert!(unpack(encoding, vec![0xff; 16]).is_err(), "{encoding}");
        }
        assert!(unpack(LZ4, vec![]).is_err());
        assert!(unpack(ZSTD, vec![]).is_err());
        assert!(unpack("brotli", vec![]).is_err());
        // A valid body whose block was cut short.
        let mut cut = PackedBody::pack(&b"0123456789".repeat(100)).0;
        cut.truncate(cut.len() / 2);
        assert!(unpack(LZ4, cut).is_err());
    }

    #[test]
    fn a_row_that_unpacks_beyond_the_limit_is_refused() {
        let raw = vec![b' '; MAX_UNPACKED as usize + 1];
        let packed = PackedBody::pack(&raw);
        assert!(matches!(unpack(LZ4, packed.0), Err(StoreError::Corrupt(_))));
        // A size prefix that claims more than the limit is refused before any allocation.
        let mut claim = (u32::MAX).to_le_bytes().to_vec();
        claim.extend_from_slice(&[0; 8]);
        assert!(matches!(unpack(LZ4, claim), Err(StoreError::Corrupt(_))));
        let zstd_frame = ruzstd::encoding::compress_to_vec(
            raw.as_slice(),
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        assert!(matches!(
            unpack(ZSTD, zstd_frame),
            Err(StoreError::Corrupt(_))
        ));
    }
}
