//! HTML compressed once and kept, and spliced into gzip responses.
//!
//! A Mensajes view kept in memory (`app::state::ViewCache`) renders its
//! results once and keeps them as a DEFLATE piece only ([`Kept`]). A hit
//! then costs no compression for those bytes: a fragment request sends them as they
//! are, and a whole page compresses only its own frame (head, menu, filter
//! form) and splices the kept piece between the frame's two halves
//! (`http::pages::spliced_html`). Bytes in, bytes out: this module imports
//! nothing of the crate.
//!
//! Why a splice is valid gzip: each part is compressed by its own raw
//! DEFLATE stream with an empty window, so no back-reference crosses a
//! part; every part but the last ends with a sync flush (an empty stored
//! block, so the next part starts on a byte boundary and no part is
//! marked final); the last one finishes the stream. The gzip trailer's
//! CRC-32 is combined from the parts' CRCs, and its length is their sum.
//!
//! Why two levels: most views are asked once (under the `console`
//! benchmark, 0.3 % of the results sent had been kept: a change makes the
//! rest stale before anyone asks again), so the request that renders results
//! compresses them fast ([`FIRST_LEVEL`]), and only a view asked again is
//! compressed smaller ([`KEPT_LEVEL`]), once, off the request's path.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;

/// The level of the results a request rendered, compressed for that
/// request (actix-web's own per-response level).
pub const FIRST_LEVEL: u32 = 1;
/// The level of a kept piece once its view is asked again: compressed once
/// and sent many times, so a smaller result is worth more CPU; level 6 was
/// chosen by measurement (BENCHMARKS.md, "Compressed once").
pub const KEPT_LEVEL: u32 = 6;
/// The level of the per-request frame of a page (as actix-web's own).
const FRAME_LEVEL: u32 = 1;

/// Bytes kept as a piece of a DEFLATE stream, with what the gzip trailer
/// needs of them.
#[derive(Clone)]
pub struct Deflated {
    /// Raw DEFLATE, sync-flushed and not final: valid inside a longer stream.
    pub deflate: Bytes,
    /// CRC-32 of the uncompressed bytes, combinable with its neighbours'.
    pub crc: crc32fast::Hasher,
    /// The uncompressed length.
    pub len: usize,
    /// The level it was compressed at.
    pub level: u32,
}

impl Deflated {
    /// `bytes` compressed at `level` as a non-final piece.
    pub fn piece(bytes: &[u8], level: u32) -> Deflated {
        let mut compressed = Vec::new();
        deflate_into(&mut compressed, bytes, level, false);
        // Kept for as long as its view: without the estimate's spare room.
        compressed.shrink_to_fit();
        Deflated {
            deflate: compressed.into(),
            crc: crc_of(bytes),
            len: bytes.len(),
            level,
        }
    }
}

/// A rendered fragment, kept compressed only: at [`FIRST_LEVEL`] until
/// [`Kept::recompress`] replaces it with the [`KEPT_LEVEL`] piece. Shared
/// (in an `Arc`) by every request its view serves.
///
/// The plain HTML is not kept: 50 rows are about 90 KB plain and 8–13 KB
/// compressed, and a full view cache (256 views) held them all twice.
/// Dropping the HTML on the thread that rendered it also lets the
/// allocator reuse its memory for the next request instead of holding it
/// until the view is evicted (BENCHMARKS.md, eleventh session). Browsers
/// accept gzip; the rare client that refuses it gets the piece inflated
/// again ([`Kept::html`]).
pub struct Kept {
    gzip: Mutex<Deflated>,
    /// Set by the one caller that will recompress.
    recompression_claimed: AtomicBool,
}

impl Kept {
    /// `html` compressed at [`FIRST_LEVEL`].
    pub fn new(html: &str) -> Kept {
        Kept {
            gzip: Mutex::new(Deflated::piece(html.as_bytes(), FIRST_LEVEL)),
            recompression_claimed: AtomicBool::new(false),
        }
    }

    /// The compressed piece to send.
    pub fn gzip(&self) -> Deflated {
        self.lock().clone()
    }

    /// The HTML, inflated from the piece (for a client that refuses gzip).
    pub fn html(&self) -> Vec<u8> {
        inflate(&self.gzip())
    }

    /// Whether the caller should call [`Kept::recompress`]: true once per
    /// `Kept`, for the first caller, so a view asked many times is
    /// compressed at [`KEPT_LEVEL`] once.
    pub fn claim_recompression(&self) -> bool {
        !self.recompression_claimed.swap(true, Ordering::AcqRel)
    }

    /// Compresses the HTML again at [`KEPT_LEVEL`] and keeps that piece for
    /// the requests that follow (CPU work: call it off the async executor).
    pub fn recompress(&self) {
        let piece = Deflated::piece(&inflate(&self.gzip()), KEPT_LEVEL);
        *self.lock() = piece;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Deflated> {
        // The guarded value is replaced whole, never left half-written: a
        // panic elsewhere while holding it cannot corrupt it.
        self.gzip
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The bytes of a piece made by [`Deflated::piece`].
fn inflate(piece: &Deflated) -> Vec<u8> {
    let mut out = Vec::with_capacity(piece.len + 64);
    let mut inflater = flate2::Decompress::new(false);
    // A piece is sync-flushed, not final: it ends where its input does.
    while (inflater.total_in() as usize) < piece.deflate.len() {
        let before = (inflater.total_in(), inflater.total_out());
        out.reserve(1024);
        inflater
            .decompress_vec(
                &piece.deflate[before.0 as usize..],
                &mut out,
                flate2::FlushDecompress::Sync,
            )
            .expect("a kept piece is valid DEFLATE, made by this module");
        // With room to write, a turn that neither reads nor writes would
        // repeat forever.
        assert_ne!(
            (inflater.total_in(), inflater.total_out()),
            before,
            "inflating a kept piece made no progress"
        );
    }
    out
}

/// A gzip member of `prefix`, `middle` (already compressed) and `suffix`.
pub fn gzip_splice(prefix: &[u8], middle: &Deflated, suffix: &[u8]) -> Vec<u8> {
    let mut crc = crc_of(prefix);
    crc.combine(&middle.crc);
    crc.combine(&crc_of(suffix));
    let length = prefix.len() + middle.len + suffix.len();
    let frame = (prefix.len() + suffix.len()) / 4;
    let mut out = Vec::with_capacity(18 + 64 + frame + middle.deflate.len());
    // Magic, DEFLATE, no flags, no mtime, no extra flags, OS unknown.
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    deflate_into(&mut out, prefix, FRAME_LEVEL, false);
    out.extend_from_slice(&middle.deflate);
    deflate_into(&mut out, suffix, FRAME_LEVEL, true);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    // ISIZE is the length modulo 2^32.
    out.extend_from_slice(&(length as u32).to_le_bytes());
    out
}

/// The final block of a stream with nothing left to compress: fixed
/// Huffman codes (BFINAL 1, BTYPE 01) and at once the end-of-block code, as
/// zlib writes for an empty input finished.
const EMPTY_FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

/// Appends to `out` the raw DEFLATE of `bytes`: finished (a final block)
/// when `last`, else ended by a sync flush so that more may follow.
///
/// Nothing to compress needs no compressor (whose reset clears zlib's 128
/// KB hash table): an empty piece that is not last is no bytes at all (the
/// piece before it already ends on a byte boundary), and an empty last one
/// is [`EMPTY_FINAL_BLOCK`]. A Mensajes fragment is spliced between an
/// empty prefix and suffix.
fn deflate_into(out: &mut Vec<u8>, bytes: &[u8], level: u32, last: bool) {
    if bytes.is_empty() {
        if last {
            out.extend_from_slice(&EMPTY_FINAL_BLOCK);
        }
        return;
    }
    out.reserve(bytes.len() / 4 + 64);
    with_compressor(level, |compressor| {
        let flush = if last {
            flate2::FlushCompress::Finish
        } else {
            flate2::FlushCompress::Sync
        };
        loop {
            let read = compressor.total_in() as usize;
            // Into memory, from a compressor this module configured: an
            // error would be a bug of the library.
            let status = compressor
                .compress_vec(&bytes[read..], out, flush)
                .expect("deflate into memory");
            let all_read = compressor.total_in() as usize == bytes.len();
            // zlib's rule: a flush is complete once a call returns with
            // room left in the output; a finish, once the stream ends.
            let done = if last {
                status == flate2::Status::StreamEnd
            } else {
                all_read && out.len() < out.capacity()
            };
            if done {
                return;
            }
            out.reserve(out.capacity().max(1024));
        }
    });
}

thread_local! {
    /// This thread's compressors, one per level, reset between uses. A new
    /// one allocates and clears zlib's window and hash tables (about 300 KB
    /// at these levels) for every piece: on the console's every request,
    /// blocks past glibc's mapping threshold that the worker's arena then
    /// kept (BENCHMARKS.md, twelfth session).
    static COMPRESSORS: std::cell::RefCell<Vec<(u32, flate2::Compress)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `compress` with a raw DEFLATE compressor at `level`, fresh from a
/// reset: this thread's own, or a new one if it is already in use.
fn with_compressor(level: u32, compress: impl FnOnce(&mut flate2::Compress)) {
    let fresh = || flate2::Compress::new(flate2::Compression::new(level), false);
    COMPRESSORS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut compressors) => {
            let index = match compressors.iter().position(|(l, _)| *l == level) {
                Some(index) => index,
                None => {
                    compressors.push((level, fresh()));
                    compressors.len() - 1
                }
            };
            let compressor = &mut compressors[index].1;
            // Reset before, not after: a panic inside `compress` must not
            // leave a half-used stream for the next caller.
            compressor.reset();
            compress(compressor);
        }
        Err(_) => compress(&mut fresh()),
    });
}

fn crc_of(bytes: &[u8]) -> crc32fast::Hasher {
    let mut crc = crc32fast::Hasher::new();
    crc.update(bytes);
    crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(bytes: &[u8]) -> String {
        let mut text = String::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_string(&mut text)
            .expect("valid gzip");
        text
    }

    #[test]
    fn a_spliced_member_decodes_to_the_three_parts_in_order() {
        let middle_text = "<tr><td>fila</td></tr>".repeat(500);
        let middle = Deflated::piece(middle_text.as_bytes(), KEPT_LEVEL);
        let gz = gzip_splice(b"<html><body>", &middle, b"</body></html>");
        assert_eq!(
            gunzip(&gz),
            format!("<html><body>{middle_text}</body></html>")
        );
        // The kept piece is smaller than its text: it really is compressed.
        assert!(middle.deflate.len() < middle_text.len() / 10);
    }

    #[test]
    fn empty_parts_still_make_a_valid_member() {
        // What zlib itself finishes an empty stream with.
        let mut zlib = flate2::Compress::new(flate2::Compression::new(FRAME_LEVEL), false);
        let mut finished = Vec::with_capacity(64);
        zlib.compress_vec(b"", &mut finished, flate2::FlushCompress::Finish)
            .unwrap();
        assert_eq!(finished, EMPTY_FINAL_BLOCK);
        let middle = Deflated::piece(b"", KEPT_LEVEL);
        assert_eq!(gunzip(&gzip_splice(b"", &middle, b"")), "");
        let middle = Deflated::piece("añadir ✓".as_bytes(), KEPT_LEVEL);
        assert_eq!(gunzip(&gzip_splice(b"", &middle, b"")), "añadir ✓");
    }

    #[test]
    fn a_kept_fragment_is_compressed_fast_first_and_smaller_once() {
        let text = (0..400)
            .map(|i| {
                format!(
                    "<tr><td>CONV-{i:06}</td><td>Cliente {} ñ</td></tr>",
                    i * 7919 % 1000
                )
            })
            .collect::<String>();
        let kept = Kept::new(&text);
        let first = kept.gzip();
        assert_eq!(first.level, FIRST_LEVEL);
        assert_eq!(kept.html(), text.as_bytes(), "inflated for a plain client");
        assert!(kept.claim_recompression());
        assert!(!kept.claim_recompression(), "claimed once");
        kept.recompress();
        let smaller = kept.gzip();
        assert_eq!(smaller.level, KEPT_LEVEL);
        assert!(smaller.deflate.len() < first.deflate.len());
        assert_eq!(kept.html(), text.as_bytes());
        for piece in [&first, &smaller] {
            assert_eq!(
                gunzip(&gzip_splice(b"<p>", piece, b"</p>")),
                format!("<p>{text}</p>")
            );
        }
    }

    #[test]
    fn a_reused_compressor_compresses_as_a_fresh_one() {
        let noise: String = (0..30_000u32)
            .map(|i| char::from_u32(0x4e00 + (i.wrapping_mul(2_654_435_761) >> 20) % 5000).unwrap())
            .collect();
        let rows = "<tr><td>CONV-000001</td><td>Cliente</td></tr>".repeat(300);
        let first = Deflated::piece(rows.as_bytes(), KEPT_LEVEL);
        // The same thread's compressor, used for other bytes in between and
        // for finished streams longer than the output's first estimate.
        for text in [noise.as_str(), "", rows.as_str()] {
            let gz = gzip_splice(text.as_bytes(), &first, text.as_bytes());
            assert_eq!(gunzip(&gz), format!("{text}{rows}{text}"));
        }
        let again = Deflated::piece(rows.as_bytes(), KEPT_LEVEL);
        assert_eq!(again.deflate, first.deflate, "no state carried over");
        let fresh = {
            let mut fresh = flate2::Compress::new(flate2::Compression::new(KEPT_LEVEL), false);
            let mut out = Vec::with_capacity(rows.len() + 1024);
            fresh
                .compress_vec(rows.as_bytes(), &mut out, flate2::FlushCompress::Sync)
                .unwrap();
            out
        };
        assert_eq!(again.deflate.as_ref(), fresh.as_slice());
    }

    #[test]
    fn an_empty_or_incompressible_fragment_inflates_to_itself() {
        let noise: String = (0..20_000u32)
            .map(|i| char::from_u32(0x4e00 + (i.wrapping_mul(2_654_435_761) >> 20) % 5000).unwrap())
            .collect();
        for text in ["", "a", noise.as_str()] {
            assert_eq!(Kept::new(text).html(), text.as_bytes());
        }
    }
}
