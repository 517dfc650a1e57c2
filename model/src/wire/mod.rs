//! Wire types of the protocols Vigil speaks, and the bounded snappy block codec they share.
//!
//! - [`prom`]: Prometheus remote write 1.0 (`prometheus.WriteRequest`).
//! - [`loki`]: Loki push (`logproto.PushRequest`).
//! - [`decode_write_request`]: the receiver's decoder of remote write, borrowing label names
//!   and values from the body (`prom_decode.rs`).
//!
//! The messages are written with `prost`'s derive so the build needs no `protoc`.

pub mod loki;
pub mod prom;
mod prom_decode;

pub use prom_decode::{decode_write_request, WriteDecodeError};

/// A body that could not be decompressed within bounds.
#[derive(Debug, thiserror::Error)]
pub enum SnappyError {
    #[error("snappy: invalid block: {0}")]
    Invalid(String),
    #[error("snappy: decompressed size {size} exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
}

/// Decompresses a snappy *block* (not the framed format), refusing before allocating when the
/// declared length is over `limit`.
pub fn snappy_decompress(body: &[u8], limit: usize) -> Result<Vec<u8>, SnappyError> {
    let size = snap::raw::decompress_len(body).map_err(|e| SnappyError::Invalid(e.to_string()))?;
    if size > limit {
        return Err(SnappyError::TooLarge { size, limit });
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| SnappyError::Invalid(e.to_string()))
}

/// Compresses `data` as one snappy block.
pub fn snappy_compress(data: &[u8]) -> Vec<u8> {
    // Compression of an in-memory slice fails only when the input exceeds snappy's 4 GiB
    // block limit, which no caller's batch approaches; fall back to an empty body rather
    // than panic, so the receiver answers 400 instead of the sender crashing.
    snap::raw::Encoder::new()
        .compress_vec(data)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_limit() {
        let data = vec![7u8; 10_000];
        let c = snappy_compress(&data);
        assert_eq!(snappy_decompress(&c, 10_000).unwrap(), data);
        assert!(matches!(
            snappy_decompress(&c, 9_999),
            Err(SnappyError::TooLarge { size: 10_000, .. })
        ));
        assert!(snappy_decompress(b"\xff\xff\xff\xff\xff garbage", 100).is_err());
    }
}
