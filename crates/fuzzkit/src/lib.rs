//! Test-only helpers for the fuzz tests of erlmcp-flow's decoders (every decoder of bytes
//! that come from outside the process: gateway envelopes, Raft RPCs, Byzantine votes,
//! gossip messages, the Q-learning model file, config files).
//!
//! Each fuzz test feeds a decoder arbitrary bytes and mutations of valid encodings
//! ([`mutated`]) and asserts three things: it returns (no panic), it returns a typed
//! error for bad input, and it does not allocate what a forged length prefix claims
//! ([`AllocProbe`], [`measure`]): a 10-byte message saying "4 GiB follow" must not make
//! the decoder reserve 4 GiB.
//!
//! # Quick start
//!
//! ```no_run
//! // In a test file (a test binary of its own):
//! erlmcp_flow_fuzzkit::install_alloc_probe!();
//!
//! use erlmcp_flow_fuzzkit::{MAX_DECODE_ALLOCATION, measure, mutated};
//! use proptest::prelude::*;
//!
//! proptest! {
//!     #![proptest_config(erlmcp_flow_fuzzkit::config())]
//!     #[test]
//!     fn decoder_survives(bytes in mutated(vec![b"valid encoding".to_vec()])) {
//!         let (result, peak) = measure(|| std::str::from_utf8(&bytes).map(str::len));
//!         prop_assert!(peak <= MAX_DECODE_ALLOCATION);
//!         let _ = result;
//!     }
//! }
//! ```
//!
//! # Running longer
//!
//! The default run is short (`FUZZ_CASES`, default 256 cases per property, a few seconds
//! per crate) so `cargo test --workspace` stays fast. For a soak:
//! `FUZZ_CASES=200000 cargo test -p erlmcp-flow-consensus --test fuzz_decode --release`.
//! A failing input is shrunk and saved by proptest under `proptest-regressions/`.
//!
//! # Layout
//!
//! * [`AllocProbe`], [`install_alloc_probe!`], [`measure`]: per-thread peak of live
//!   heap bytes and the largest single allocation while a closure runs.
//! * [`mutated`], [`arbitrary_bytes`], [`huge_length_variants`]: the inputs.
//! * [`decoder_fuzz_tests!`]: the three tests every decoder gets.
//! * [`config`]: the proptest configuration (`FUZZ_CASES`).

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use proptest::prelude::*;

/// The most heap a decoder may hold at once for one input, bytes (32 MiB). The project
/// codec lets bincode claim up to 16 MiB (its frame limit) and serde pre-allocates at most
/// 1 MiB per sequence from a length prefix; more than this means a length prefix was
/// believed.
pub const MAX_DECODE_ALLOCATION: usize = 32 * 1024 * 1024;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// A global allocator (the system's) that tracks, per thread, the live heap bytes, their
/// peak and the largest single allocation. Install it with [`install_alloc_probe!`].
#[derive(Debug, Clone, Copy, Default)]
pub struct AllocProbe;

fn on_alloc(size: usize) {
    // `try_with`: never panic in the allocator, even during thread teardown.
    let _ = LIVE.try_with(|live| {
        let now = live.get() + size as isize;
        live.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

fn on_free(size: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get() - size as isize));
}

// SAFETY: every call is forwarded to `System` unchanged; the bookkeeping only touches
// const-initialized thread-locals, which never allocate.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for AllocProbe {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        on_free(layout.size());
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        on_free(layout.size());
        on_alloc(new_size);
        // SAFETY: forwarded with the caller's pointer, layout and size.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// The three fuzz tests every decoder gets, for a decoder checked by `$check` (a
/// `fn(&[u8]) -> Result<(), proptest::test_runner::TestCaseError>` that decodes under
/// [`measure`] and asserts what it must) and valid encodings `$seeds` (a
/// `Vec<Vec<u8>>`):
///
/// * `huge_length_prefixes_allocate_nothing_large`: every [`huge_length_variants`] input;
/// * `arbitrary_bytes_never_panic`: [`arbitrary_bytes`];
/// * `mutated_encodings_never_panic`: [`mutated`] seeds.
///
/// The calling crate needs `proptest` as a dev-dependency.
#[macro_export]
macro_rules! decoder_fuzz_tests {
    (seeds: $seeds:expr, check: $check:path $(,)?) => {
        /// Forged huge length prefixes (2^16, 2^32, 2^64) written over or inserted at every
        /// position of every valid encoding are typed errors without a large allocation.
        #[test]
        fn huge_length_prefixes_allocate_nothing_large() {
            for bytes in $crate::huge_length_variants(&$seeds) {
                $check(&bytes).unwrap();
            }
        }

        proptest::proptest! {
            #![proptest_config($crate::config())]

            /// Arbitrary bytes: no panic, bounded allocation, typed error.
            #[test]
            fn arbitrary_bytes_never_panic(bytes in $crate::arbitrary_bytes()) {
                $check(&bytes)?;
            }

            /// Mutations of valid encodings: no panic, bounded allocation, and what
            /// decodes round-trips.
            #[test]
            fn mutated_encodings_never_panic(bytes in $crate::mutated($seeds)) {
                $check(&bytes)?;
            }
        }
    };
}

/// Makes [`AllocProbe`] the global allocator of the test binary it is used in.
#[macro_export]
macro_rules! install_alloc_probe {
    () => {
        #[global_allocator]
        static ALLOC_PROBE: $crate::AllocProbe = $crate::AllocProbe;
    };
}

/// Runs `f` and returns its result with the peak of heap bytes it held at once on this
/// thread (above what was live before) and the largest single allocation it made, as
/// `max(peak, largest)`. Zero unless [`AllocProbe`] is installed.
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    LARGEST.with(|l| l.set(0));
    let out = f();
    let peak = (PEAK.with(Cell::get) - base).max(0) as usize;
    (out, peak.max(LARGEST.with(Cell::get)))
}

/// Whether [`AllocProbe`] is the global allocator (a 1 MiB allocation shows up).
pub fn probe_installed() -> bool {
    let (_, peak) = measure(|| std::hint::black_box(vec![1u8; 1 << 20]).len());
    peak >= 1 << 20
}

/// The proptest configuration of a fuzz test: `FUZZ_CASES` cases (default 256), no
/// persistence of failures outside the crate's `proptest-regressions/`.
pub fn config() -> ProptestConfig {
    let cases = std::env::var("FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    ProptestConfig { cases, max_shrink_iters: 2_000, ..ProptestConfig::default() }
}

/// Arbitrary bytes, 0..=4096 long.
pub fn arbitrary_bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..=4096)
}

/// bincode varint prefixes claiming huge lengths: u16, u32 and u64 markers with their
/// largest values, and exactly 4 GiB.
pub const HUGE_LENGTH_PREFIXES: [&[u8]; 4] = [
    &[0xfb, 0xff, 0xff],
    &[0xfc, 0xff, 0xff, 0xff, 0xff],
    &[0xfd, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00],
    &[0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
];

/// One edit of a byte string.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
    /// Overwrite at a position with a huge length prefix.
    HugeLength(usize, usize),
    /// Insert a huge length prefix.
    InsertHugeLength(usize, usize),
    /// Repeat a slice (len, at).
    Duplicate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<usize>(), 1u8..).prop_map(|(i, b)| Mutation::Flip(i, b)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => any::<usize>().prop_map(Mutation::Remove),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        2 => (any::<usize>(), 0..HUGE_LENGTH_PREFIXES.len()).prop_map(|(i, p)| Mutation::HugeLength(i, p)),
        1 => (any::<usize>(), 0..HUGE_LENGTH_PREFIXES.len()).prop_map(|(i, p)| Mutation::InsertHugeLength(i, p)),
        1 => (1usize..64, any::<usize>()).prop_map(|(l, i)| Mutation::Duplicate(l, i)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
    match *m {
        Mutation::Flip(i, b) if !bytes.is_empty() => {
            let i = at(i, bytes.len());
            bytes[i] ^= b;
        }
        Mutation::Set(i, b) if !bytes.is_empty() => {
            let i = at(i, bytes.len());
            bytes[i] = b;
        }
        Mutation::Insert(i, b) => {
            let i = at(i, bytes.len() + 1);
            bytes.insert(i, b);
        }
        Mutation::Remove(i) if !bytes.is_empty() => {
            let i = at(i, bytes.len());
            bytes.remove(i);
        }
        Mutation::Truncate(i) => {
            let i = at(i, bytes.len() + 1);
            bytes.truncate(i);
        }
        Mutation::HugeLength(i, p) => {
            let prefix = HUGE_LENGTH_PREFIXES[p];
            let i = at(i, bytes.len() + 1);
            let end = (i + prefix.len()).min(bytes.len());
            bytes.splice(i..end, prefix.iter().copied());
        }
        Mutation::InsertHugeLength(i, p) => {
            let i = at(i, bytes.len() + 1);
            bytes.splice(i..i, HUGE_LENGTH_PREFIXES[p].iter().copied());
        }
        Mutation::Duplicate(len, i) if !bytes.is_empty() => {
            let i = at(i, bytes.len());
            let end = (i + len).min(bytes.len());
            let chunk = bytes[i..end].to_vec();
            bytes.splice(end..end, chunk);
        }
        _ => {}
    }
}

/// A valid encoding from `seeds` with 1..=8 random edits (bit flips, byte sets, inserts,
/// removals, truncation, huge length prefixes written over or inserted, duplicated
/// slices): inputs that get past a decoder's first bytes and break deeper.
pub fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    assert!(!seeds.is_empty(), "mutated() needs at least one valid encoding");
    (0..seeds.len(), proptest::collection::vec(mutation(), 1..=8)).prop_map(move |(s, edits)| {
        let mut bytes = seeds[s].clone();
        for m in &edits {
            apply(&mut bytes, m);
        }
        bytes
    })
}

/// Every valid encoding in `seeds` with each huge length prefix written over, and
/// inserted at, every position: the exhaustive "length prefix claims 4 GiB" inputs.
pub fn huge_length_variants(seeds: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for s in seeds {
        for p in 0..HUGE_LENGTH_PREFIXES.len() {
            for i in 0..=s.len() {
                for m in [Mutation::HugeLength(i, p), Mutation::InsertHugeLength(i, p)] {
                    let mut b = s.clone();
                    apply(&mut b, &m);
                    out.push(b);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mutations stay within bounds on empty and short inputs, and the huge-length
    /// variants cover every position.
    #[test]
    fn mutations_never_panic_and_cover_positions() {
        for m in [
            Mutation::Flip(7, 1),
            Mutation::Set(3, 0),
            Mutation::Remove(9),
            Mutation::Truncate(100),
            Mutation::HugeLength(5, 3),
            Mutation::InsertHugeLength(0, 1),
            Mutation::Duplicate(10, 4),
        ] {
            let mut empty = Vec::new();
            apply(&mut empty, &m);
            let mut short = vec![1, 2];
            apply(&mut short, &m);
        }
        let v = huge_length_variants(&[vec![0u8; 3]]);
        assert_eq!(v.len(), 4 * 4 * 2);
        assert!(v.iter().any(|b| b.starts_with(&[0xfd, 0xff])));
    }
}
