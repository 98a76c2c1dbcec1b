//! JSON Lines output: one object per attempt, then one summary object (DESIGN.md's contract).
//!
//! Attempts are written by hand rather than through serde: a replay writes a million of them, and
//! the generic serializer's per-field dispatch and byte-at-a-time string escaping cost as much as
//! the wording itself. The bytes are exactly serde_json's for the same [`Attempt`] (its derived
//! `Serialize` stays the reference, and the tests compare the two).

use std::io::{self, Write};
use std::net::SocketAddr;

use serde_json::ser::{CompactFormatter, Formatter as _};

use crate::correlate::Handshake;
use crate::event::Timestamp;
use crate::flow::{AddrText, Dir, Family};
use crate::linux::Errno;
use crate::timeline::{Attempt, Entry, ErrnoSource, Outcome, Summary, What};

/// Writes one attempt as a JSON line.
pub fn attempt(w: &mut dyn Write, attempt: &Attempt) -> io::Result<()> {
    let mut buf = Vec::with_capacity(2048);
    attempt_into(&mut buf, attempt)?;
    w.write_all(&buf)
}

/// Appends one attempt as a JSON line to `buf`.
pub fn attempt_into(buf: &mut Vec<u8>, a: &Attempt) -> io::Result<()> {
    head(
        buf,
        &Head {
            kind: a.kind,
            client: a.client,
            server: a.server,
            family: a.family,
            outcome: a.outcome,
            errno: a.errno,
            errno_source: a.errno_source,
            syn_count: a.syn_count,
            start: a.start,
            rtt_ms: a.rtt_ms,
            decided_after: a.decided_after,
            isn: a.isn,
        },
    )?;
    string(buf, &a.cause);
    buf.extend_from_slice(b",\"findings\":[");
    for (i, finding) in a.findings.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(b"{\"code\":");
        string(buf, finding.code);
        buf.extend_from_slice(b",\"summary\":");
        string(buf, &finding.summary);
        buf.push(b'}');
    }
    buf.push(b']');
    if let Some(path) = &a.path {
        // Only `trace --path` has one: not a hot path.
        buf.extend_from_slice(b",\"path\":");
        serde_json::to_writer(&mut *buf, path)?;
    }
    buf.extend_from_slice(b",\"events\":[");
    for (i, entry) in a.events.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        self::entry(buf, entry)?;
    }
    buf.extend_from_slice(b"]}\n");
    Ok(())
}

/// Appends a clean three-way handshake as a JSON line to `buf`: the same bytes as
/// [`attempt_into`] writes of its report, written from the evidence without the report (see
/// [`Handshake`]). `scratch` is room for its words, reused from one attempt to the next.
pub fn handshake_into(buf: &mut Vec<u8>, h: &Handshake<'_>, scratch: &mut String) -> io::Result<()> {
    head(
        buf,
        &Head {
            kind: "attempt",
            client: h.client(),
            server: h.server(),
            family: h.family(),
            outcome: Outcome::Established,
            errno: None,
            errno_source: ErrnoSource::Inferred,
            syn_count: 1,
            start: h.start(),
            rtt_ms: Some(h.rtt_ms()),
            decided_after: Some(h.decided_after()),
            isn: h.isn(),
        },
    )?;
    scratch.clear();
    h.cause_into(scratch);
    own_words(buf, scratch);
    buf.extend_from_slice(b",\"findings\":[],\"events\":[");
    for (i, step) in h.steps().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        entry_head(buf, step.t(), step.dir(), step.what())?;
        scratch.clear();
        step.summary_into(scratch);
        own_words(buf, scratch);
        scratch.clear();
        if step.note_into(scratch) {
            buf.extend_from_slice(b",\"note\":");
            own_words(buf, scratch);
        }
        entry_end(buf, false, Some(step.frame()));
    }
    buf.extend_from_slice(b"]}\n");
    Ok(())
}

/// What an attempt's line says before its cause.
struct Head {
    kind: &'static str,
    client: SocketAddr,
    server: SocketAddr,
    family: Family,
    outcome: Outcome,
    errno: Option<Errno>,
    errno_source: ErrnoSource,
    syn_count: u32,
    start: Timestamp,
    rtt_ms: Option<f64>,
    decided_after: Option<f64>,
    isn: u32,
}

/// Opens an attempt's line and writes it up to the cause's value.
fn head(buf: &mut Vec<u8>, h: &Head) -> io::Result<()> {
    // The kind and the errno's name are synscope's own words: quoted without a look at each byte
    // (as the check of a short string, that look cost more than the rest of the head's strings).
    buf.extend_from_slice(b"{\"kind\":");
    own_words(buf, h.kind);
    buf.extend_from_slice(b",\"client\":\"");
    buf.extend_from_slice(AddrText::socket(h.client).as_bytes());
    buf.extend_from_slice(b"\",\"server\":\"");
    buf.extend_from_slice(AddrText::socket(h.server).as_bytes());
    buf.extend_from_slice(b"\",\"family\":\"");
    buf.extend_from_slice(h.family.name().as_bytes());
    buf.extend_from_slice(b"\",\"outcome\":\"");
    buf.extend_from_slice(h.outcome.name().as_bytes());
    buf.extend_from_slice(b"\",\"errno\":");
    match h.errno {
        Some(errno) => own_words(buf, errno.name()),
        None => buf.extend_from_slice(b"null"),
    }
    buf.extend_from_slice(b",\"errno_source\":\"");
    buf.extend_from_slice(h.errno_source.name().as_bytes());
    buf.extend_from_slice(b"\",\"syn_count\":");
    integer(buf, h.syn_count);
    buf.extend_from_slice(b",\"start\":");
    float(buf, crate::timeline::start_secs(h.start))?;
    buf.extend_from_slice(b",\"rtt_ms\":");
    optional_float(buf, h.rtt_ms)?;
    buf.extend_from_slice(b",\"decided_after\":");
    optional_float(buf, h.decided_after)?;
    buf.extend_from_slice(b",\"isn\":");
    integer(buf, h.isn);
    buf.extend_from_slice(b",\"cause\":");
    Ok(())
}

fn entry(buf: &mut Vec<u8>, e: &Entry) -> io::Result<()> {
    entry_head(buf, e.t, e.dir, e.what)?;
    string(buf, &e.summary);
    if let Some(note) = &e.note {
        buf.extend_from_slice(b",\"note\":");
        string(buf, note);
    }
    entry_end(buf, e.ignored, e.frame);
    Ok(())
}

/// Opens a timeline entry and writes it up to the summary's value.
fn entry_head(buf: &mut Vec<u8>, t: f64, dir: Dir, what: What) -> io::Result<()> {
    buf.extend_from_slice(b"{\"t\":");
    float(buf, t)?;
    buf.extend_from_slice(b",\"dir\":\"");
    buf.extend_from_slice(dir.name().as_bytes());
    buf.extend_from_slice(b"\",\"what\":\"");
    buf.extend_from_slice(what.name().as_bytes());
    buf.extend_from_slice(b"\",\"summary\":");
    Ok(())
}

/// Closes a timeline entry after its note: whether it was ignored, and its frame.
fn entry_end(buf: &mut Vec<u8>, ignored: bool, frame: Option<u64>) {
    if ignored {
        buf.extend_from_slice(b",\"ignored\":true");
    }
    if let Some(frame) = frame {
        buf.extend_from_slice(b",\"frame\":");
        integer(buf, frame);
    }
    buf.push(b'}');
}

/// A JSON string of synscope's own words (fixed sentences, numbers, addresses), which hold nothing
/// JSON escapes: quoted as they are, without [`string`]'s look at every byte (debug builds check
/// that [`string`] would write the same).
fn own_words(buf: &mut Vec<u8>, s: &str) {
    debug_assert!(
        {
            let mut quoted = Vec::with_capacity(s.len() + 2);
            string(&mut quoted, s);
            quoted.len() == s.len() + 2
        },
        "nothing to escape in {s:?}"
    );
    buf.push(b'"');
    buf.extend_from_slice(s.as_bytes());
    buf.push(b'"');
}

/// Writes the summary as a JSON line.
pub fn summary(w: &mut dyn Write, summary: &Summary) -> io::Result<()> {
    serde_json::to_writer(&mut *w, summary)?;
    w.write_all(b"\n")
}

pub(super) fn integer(buf: &mut Vec<u8>, n: impl itoa::Integer) {
    buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// A float as serde_json writes it (its own formatter), and `null` for NaN and infinities as it does.
fn float(buf: &mut Vec<u8>, x: f64) -> io::Result<()> {
    if let Some(micros) = plain_micros(x) {
        write_micros(buf, micros);
        Ok(())
    } else if x.is_finite() {
        CompactFormatter.write_f64(buf, x)
    } else {
        buf.extend_from_slice(b"null");
        Ok(())
    }
}

/// `x` in whole microseconds, when that is exactly what serde_json writes of it, which holds for the
/// times and round-trip times of an attempt, and for its start (seconds since 1970):
/// - `x` is the double nearest to `micros` / 10^6: the check below, as the quotient is correctly
///   rounded;
/// - below 2^33 (the year 2242) a double's spacing is under a microsecond, so no other decimal with
///   at most six digits after the point rounds to `x`, and any decimal with more digits is longer:
///   the shortest form that rounds to `x`, which serde_json writes, has exactly these digits;
/// - from 1e-5 on, serde_json writes them in plain notation (its formatter's fixed range is
///   1e-5 to 1e16).
///
/// Elsewhere `None`.
pub(super) fn plain_micros(x: f64) -> Option<i64> {
    const LARGEST: f64 = (1u64 << 33) as f64;
    let plain = (1e-5..LARGEST).contains(&x.abs()) || (x == 0.0 && x.is_sign_positive());
    if !plain {
        return None;
    }
    // Rounded half away from zero by hand: `f64::round` is a call into libm on baseline x86-64. A
    // wrong guess at a tie only fails the check below, which then leaves `x` to the formatter.
    let scaled = x * 1e6;
    let micros = (scaled + 0.5f64.copysign(scaled)) as i64;
    (micros as f64 / 1e6 == x).then_some(micros)
}

/// `micros` / 10^6 in plain decimal notation, with at least one digit after the point (`131.0`).
fn write_micros(buf: &mut Vec<u8>, micros: i64) {
    if micros < 0 {
        buf.push(b'-');
    }
    let micros = micros.unsigned_abs();
    integer(buf, micros / 1_000_000);
    buf.push(b'.');
    let fraction = (micros % 1_000_000) as usize;
    if fraction == 0 {
        buf.push(b'0');
        return;
    }
    // Without the zeros at the end.
    let digits = six_digits(fraction);
    let len = digits.iter().rposition(|&d| d != b'0').map_or(0, |last| last + 1);
    buf.extend_from_slice(&digits[..len]);
}

/// The six decimal digits of `fraction` (below 10^6, as microseconds after the point are), two at
/// a time from [`PAIRS`].
#[inline]
pub(super) fn six_digits(fraction: usize) -> [u8; 6] {
    let mut digits = [0u8; 6];
    for (pair, value) in digits.chunks_exact_mut(2).zip([fraction / 10_000, fraction / 100 % 100, fraction % 100]) {
        pair.copy_from_slice(&PAIRS[value]);
    }
    digits
}

/// The two decimal digits of every number below 100.
pub(super) static PAIRS: [[u8; 2]; 100] = {
    let mut table = [[0u8; 2]; 100];
    let mut n = 0;
    while n < 100 {
        table[n] = [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8];
        n += 1;
    }
    table
};

fn optional_float(buf: &mut Vec<u8>, x: Option<f64>) -> io::Result<()> {
    match x {
        Some(x) => float(buf, x),
        None => {
            buf.extend_from_slice(b"null");
            Ok(())
        }
    }
}

/// A JSON string: quoted, with `"`, `\` and control characters escaped exactly as serde_json does
/// (RFC 8259 7: the short forms where there is one, else `\u00XX`); everything else, UTF-8 included,
/// is copied as it is, 32 bytes at a time while none needs escaping, then eight.
fn string(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    let bytes = s.as_bytes();
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        if let Some(block) = bytes.get(at..at + 32).and_then(|b| <&[u8; 32]>::try_from(b).ok()) {
            if !block_needs_escape(block) {
                at += 32;
                continue;
            }
        }
        if let Some(word) = bytes.get(at..at + 8) {
            let word = u64::from_le_bytes(word.try_into().unwrap_or_default());
            if !needs_escape(word) {
                at += 8;
                continue;
            }
        } else {
            // The tail, shorter than a word: checked as one word padded with a plain letter
            // (short strings, such as every "attempt", are only a tail).
            let mut word = [b'a'; 8];
            word.iter_mut().zip(&bytes[at..]).for_each(|(w, &b)| *w = b);
            if !needs_escape(u64::from_le_bytes(word)) {
                at = bytes.len();
                continue;
            }
        }
        let end = (at + 8).min(bytes.len());
        while at < end {
            let byte = bytes[at];
            let escaped: &[u8] = match byte {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0x08 => b"\\b",
                0x0c => b"\\f",
                0x00..=0x1f => &[b'\\', b'u', b'0', b'0', HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]],
                _ => {
                    at += 1;
                    continue;
                }
            };
            buf.extend_from_slice(&bytes[copied..at]);
            buf.extend_from_slice(escaped);
            at += 1;
            copied = at;
        }
    }
    buf.extend_from_slice(&bytes[copied..]);
    buf.push(b'"');
}

const HEX: [u8; 16] = *b"0123456789abcdef";

/// Whether any of 32 bytes is a control character, `"` or `\`: without a branch per byte, so that
/// the compiler checks them all at once (SIMD compares).
fn block_needs_escape(block: &[u8; 32]) -> bool {
    block.iter().fold(false, |any, &b| any | (b < 0x20) | (b == b'"') | (b == b'\\'))
}

/// Whether any of the eight bytes of `word` is a control character, `"` or `\` (the bit tricks of
/// "Bit Twiddling Hacks": a byte below n, a byte equal to zero; exact as a yes/no answer).
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS != 0;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGHS != 0;
    below_space || has_zero(word ^ (ONES * u64::from(b'"'))) || has_zero(word ^ (ONES * u64::from(b'\\')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde_string(s: &str) -> Vec<u8> {
        serde_json::to_vec(s).unwrap_or_default()
    }

    #[test]
    fn test_strings_escape_as_serde_json_does() {
        let mut cases: Vec<String> = vec![
            String::new(),
            "plain".into(),
            "exactly8".into(),
            "tcp_v4_err → icmp_err_convert".into(),
            "quote \" backslash \\ newline \n tab \t cr \r bell \u{7} nul \0 del \u{7f} ff \u{c} bs \u{8}".into(),
            "\"\"\"\"\"\"\"\"\\\\\\\\\\\\\\\\".into(),
        ];
        // Every byte value that stands alone as a char, at every offset within two blocks of 32
        // bytes and the words after them.
        for c in (0u8..=0x7f).map(char::from).chain(['é', '→', '😀']) {
            for offset in 0..80 {
                cases.push(format!("{}{c}{}", "a".repeat(offset), "b".repeat(80 - offset)));
            }
        }
        for case in cases {
            let mut buf = Vec::new();
            string(&mut buf, &case);
            assert_eq!(String::from_utf8_lossy(&buf), String::from_utf8_lossy(&serde_string(&case)), "{case:?}");
        }
    }

    fn serde_float(x: f64) -> String {
        serde_json::to_string(&x).unwrap_or_default()
    }

    fn ours(x: f64) -> String {
        let mut buf = Vec::new();
        float(&mut buf, x).unwrap_or_default();
        String::from_utf8_lossy(&buf).into_owned()
    }

    #[test]
    fn test_floats_write_as_serde_json_does() {
        // Every microsecond of the first second, either sign, as times and round-trip times are made.
        for micros in 0..1_000_000i64 {
            for x in [micros as f64 / 1e6, -(micros as f64) / 1e6, (micros as f64 / 1e3).round() / 1e3] {
                assert_eq!(ours(x), serde_float(x), "{micros} µs");
            }
        }
        // Random microseconds up to 10^15 and beyond, random doubles, and the edges.
        let mut bits = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..300_000 {
            bits ^= bits << 13;
            bits ^= bits >> 7;
            bits ^= bits << 17;
            let micros = (bits >> 10) as i64;
            for x in [micros as f64 / 1e6, (micros % 1_000_000_000_000_000) as f64 / 1e6, f64::from_bits(bits)] {
                if x.is_finite() {
                    assert_eq!(ours(x), serde_float(x), "{x:e}");
                }
            }
        }
        // Starts: every microsecond of a second in 2024, and random ones up to the bound and past it.
        for micros in 0..1_000_000i64 {
            let x = (1_704_067_200_000_000 + micros) as f64 / 1e6;
            assert_eq!(ours(x), serde_float(x), "{micros} µs into 2024");
        }
        for _ in 0..300_000 {
            bits ^= bits << 13;
            bits ^= bits >> 7;
            bits ^= bits << 17;
            let x = (bits % (1 << 34) * 1_000_000 + bits % 1_000_000) as f64 / 1e6;
            assert_eq!(ours(x), serde_float(x), "{x:e}");
        }
        let largest = (1u64 << 33) as f64;
        for x in [
            0.0,
            -0.0,
            1e-5,
            9.99999e-6,
            1e-6,
            1e9,
            999_999_999.999_999,
            1704067200.0001,
            131.0,
            f64::MIN_POSITIVE,
            0.5e-6,
            1.5e-6,
            2.5e-6,
            -0.5e-6,
            largest,
            largest - 1e-6,
            8_589_934_591.999_999,
            -8_589_934_591.999_999,
            1e16,
            4_294_967_295.999_999,
        ] {
            assert_eq!(ours(x), serde_float(x), "{x:e}");
        }
        assert_eq!(plain_micros(0.032613), Some(32_613), "the fast path is taken");
        assert_eq!(plain_micros(1704067200.0001), Some(1_704_067_200_000_100), "the fast path is taken for starts");
    }

    #[test]
    fn test_needs_escape_is_exact() {
        for byte in 0..=255u8 {
            for position in 0..8 {
                let mut word = [b'a'; 8];
                word[position] = byte;
                let expected = byte < 0x20 || byte == b'"' || byte == b'\\';
                assert_eq!(needs_escape(u64::from_le_bytes(word)), expected, "byte {byte:#x} at {position}");
            }
        }
        // Mixed words, where one byte's borrow could spill into the next.
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..1_000_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let expected = x.to_le_bytes().iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
            assert_eq!(needs_escape(x), expected, "{x:#018x}");
        }
    }
}
