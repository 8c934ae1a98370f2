//! Fossil delta format (protocol-extensions.md §2.6): what Centrifugo's SDKs apply when a
//! publication arrives with `delta: true`. Written from the format's description; any patch
//! that decodes to the target is valid, so the matching strategy here is our own.
//!
//! A patch is `<target length>\n`, then commands `<n>@<offset>,` (copy `n` bytes of the source
//! from `offset`) and `<n>:<n bytes>` (insert bytes), then `<checksum>;`. Numbers are written
//! in base 64, most significant digit first.

use std::collections::HashMap;

/// Bytes hashed per source block; sources this short get a single insert.
const BLOCK: usize = 16;

const DIGITS: &[u8; 64] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~";

/// A patch that turns `source` into `target`.
pub fn create(source: &[u8], target: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(target.len() / 4 + 16);
    put_number(&mut out, target.len());
    out.push(b'\n');
    if source.len() <= BLOCK {
        insert(&mut out, target);
    } else {
        encode_copies(&mut out, source, target);
    }
    put_number(&mut out, checksum(target) as usize);
    out.push(b';');
    out
}

/// Finds runs of `target` that appear in `source` (anchored on source blocks) and writes copies
/// for them, inserts for the rest.
fn encode_copies(out: &mut Vec<u8>, source: &[u8], target: &[u8]) {
    let blocks = index_blocks(source);
    let mut literal_start = 0;
    let mut at = 0;
    while at + BLOCK <= target.len() {
        let found = blocks.get(&target[at..at + BLOCK]).and_then(|starts| {
            starts
                .iter()
                .map(|&start| extend(source, target, start, at, literal_start))
                .filter(|m| m.len >= cost(m, literal_start))
                .max_by_key(|m| m.len)
        });
        match found {
            Some(m) => {
                insert(out, &target[literal_start..m.target_start]);
                put_number(out, m.len);
                out.push(b'@');
                put_number(out, m.source_start);
                out.push(b',');
                at = m.target_start + m.len;
                literal_start = at;
            }
            None => at += 1,
        }
    }
    insert(out, &target[literal_start..]);
}

/// Source block starts by block content (every block, non-overlapping).
fn index_blocks(source: &[u8]) -> HashMap<&[u8], Vec<usize>> {
    let mut blocks: HashMap<&[u8], Vec<usize>> = HashMap::with_capacity(source.len() / BLOCK);
    for start in (0..=source.len() - BLOCK).step_by(BLOCK) {
        blocks.entry(&source[start..start + BLOCK]).or_default().push(start);
    }
    blocks
}

/// A run of equal bytes in source and target.
struct Match {
    source_start: usize,
    target_start: usize,
    len: usize,
}

/// Grows a block match forwards, and backwards into the literal bytes not yet written.
fn extend(source: &[u8], target: &[u8], source_at: usize, target_at: usize, literal_start: usize) -> Match {
    let forward = source[source_at..].iter().zip(&target[target_at..]).take_while(|(a, b)| a == b).count();
    let back_room = source_at.min(target_at - literal_start);
    let backward = (1..=back_room).take_while(|k| source[source_at - k] == target[target_at - k]).count();
    Match { source_start: source_at - backward, target_start: target_at - backward, len: forward + backward }
}

/// Bytes a copy command costs, with the insert before it: a copy shorter than that is no gain.
fn cost(m: &Match, literal_start: usize) -> usize {
    digits(m.target_start - literal_start) + digits(m.len) + digits(m.source_start) + 3
}

fn insert(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    put_number(out, bytes.len());
    out.push(b':');
    out.extend_from_slice(bytes);
}

fn digits(mut value: usize) -> usize {
    let mut count = 1;
    while value >= 64 {
        value >>= 6;
        count += 1;
    }
    count
}

fn put_number(out: &mut Vec<u8>, value: usize) {
    let count = digits(value);
    for i in (0..count).rev() {
        out.push(DIGITS[(value >> (6 * i)) & 63]);
    }
}

/// Fossil's checksum: the bytes as big-endian 32-bit words (the last one zero-padded), summed
/// modulo 2³².
pub fn checksum(bytes: &[u8]) -> u32 {
    bytes.chunks(4).fold(0u32, |sum, chunk| {
        let mut word = [0u8; 4];
        word[..chunk.len()].copy_from_slice(chunk);
        sum.wrapping_add(u32::from_be_bytes(word))
    })
}

/// Why a patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad fossil delta: {0}")]
pub struct ApplyError(&'static str);

/// Applies a patch (the SDKs' side; used to check patches before they are sent in tests).
pub fn apply(source: &[u8], patch: &[u8]) -> Result<Vec<u8>, ApplyError> {
    let mut reader = Reader { bytes: patch, at: 0 };
    let size = reader.number()?;
    reader.expect(b'\n')?;
    let mut out = Vec::with_capacity(size.min(1 << 24));
    loop {
        let count = reader.number()?;
        match reader.next()? {
            b'@' => {
                let offset = reader.number()?;
                reader.expect(b',')?;
                let end = offset.checked_add(count).filter(|end| *end <= source.len()).ok_or(ApplyError("copy"))?;
                out.extend_from_slice(&source[offset..end]);
            }
            b':' => out.extend_from_slice(reader.take(count)?),
            b';' if out.len() == size && checksum(&out) as usize == count => return Ok(out),
            b';' => return Err(ApplyError("size or checksum")),
            _ => return Err(ApplyError("command")),
        }
        if out.len() > size {
            return Err(ApplyError("longer than declared"));
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn next(&mut self) -> Result<u8, ApplyError> {
        let byte = *self.bytes.get(self.at).ok_or(ApplyError("truncated"))?;
        self.at += 1;
        Ok(byte)
    }

    fn expect(&mut self, byte: u8) -> Result<(), ApplyError> {
        (self.next()? == byte).then_some(()).ok_or(ApplyError("separator"))
    }

    fn take(&mut self, count: usize) -> Result<&[u8], ApplyError> {
        let end = self.at.checked_add(count).filter(|end| *end <= self.bytes.len()).ok_or(ApplyError("insert"))?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn number(&mut self) -> Result<usize, ApplyError> {
        let mut value: usize = 0;
        let mut any = false;
        while let Some(digit) = self.bytes.get(self.at).and_then(|b| DIGITS.iter().position(|d| d == b)) {
            value = value.checked_mul(64).and_then(|v| v.checked_add(digit)).ok_or(ApplyError("number"))?;
            self.at += 1;
            any = true;
        }
        any.then_some(value).ok_or(ApplyError("number"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(source: &[u8], target: &[u8]) -> Vec<u8> {
        let patch = create(source, target);
        assert_eq!(apply(source, &patch).as_deref(), Ok(target), "patch {:?}", String::from_utf8_lossy(&patch));
        patch
    }

    #[test]
    fn similar_payloads_give_small_patches() {
        let before = br#"{"match":"home-away","score":"1:0","minute":17,"events":["kickoff","goal home"]}"#;
        let after = br#"{"match":"home-away","score":"1:0","minute":18,"events":["kickoff","goal home"]}"#;
        let patch = round_trip(before, after);
        assert!(patch.len() < after.len() / 2, "{}", String::from_utf8_lossy(&patch));
        let big: Vec<u8> = (0..5000u32).flat_map(|n| n.to_string().into_bytes()).collect();
        let mut changed = big.clone();
        changed[2500] = b'x';
        changed.extend_from_slice(b"tail");
        assert!(round_trip(&big, &changed).len() < 60);
    }

    #[test]
    fn any_bytes_round_trip() {
        let cases: [(&[u8], &[u8]); 6] = [
            (b"", b""),
            (b"short", b"a longer target than the source"),
            (b"0123456789abcdefXYZ", b""),
            (&[0, 255, 10, 13, 0, 255, 10, 13, 0, 255, 10, 13, 0, 255, 10, 13, 1], &[255, 10, 13, 0, 255, 10, 13, 0]),
            ("кириллица и ещё кириллица, и снова".as_bytes(), "кириллица и ещё кириллицы, и снова!".as_bytes()),
            (&[7; 100], &[7; 300]),
        ];
        for (source, target) in cases {
            round_trip(source, target);
        }
    }

    #[test]
    fn checksum_sums_big_endian_words() {
        assert_eq!(checksum(b""), 0);
        assert_eq!(checksum(&[0, 0, 0, 1, 0, 0, 0, 2]), 3);
        assert_eq!(checksum(&[1]), 0x0100_0000);
        assert_eq!(checksum(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1]), 0);
    }

    #[test]
    fn numbers_use_fossil_digits() {
        let mut out = Vec::new();
        for value in [0, 9, 10, 63, 64, 4095, 4096] {
            put_number(&mut out, value);
            out.push(b' ');
        }
        assert_eq!(out, b"0 9 A ~ 10 ~~ 100 ");
    }

    #[test]
    fn broken_patches_are_refused_not_panicked_on() {
        let source = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let good = create(source, b"0123456789abcdefghijklmnopqrstuvwxyz!");
        for cut in 0..good.len() {
            assert!(apply(source, &good[..cut]).is_err(), "cut at {cut}");
        }
        assert!(apply(source, b"5\n5@999,0;").is_err());
        assert!(apply(source, b"~~~~~~~~~~~~~~\n").is_err());
    }
}
