//! Helpers shared by the interruption and yield tests.

/// What the guests' `checksum` export computes, natively: an LCG-style mix of
/// `n, n-1, ..., 1`, so any lost or repeated iteration changes the result.
pub fn checksum(mut n: u64) -> u64 {
    let mut acc = 0u64;
    loop {
        acc = acc.wrapping_mul(6364136223846793005).wrapping_add(n);
        n -= 1;
        if n == 0 {
            return acc;
        }
    }
}
