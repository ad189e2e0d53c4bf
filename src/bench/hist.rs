//! Latency histogram: log-linear buckets over nanoseconds, fixed size, mergeable.
//!
//! Values below 64 ns have a bucket each; above, every power of two is split into 64 equal
//! buckets, so a reported percentile is within 1/64 (1.6%) of the recorded value. Recording is
//! an index computation and an increment, cheap enough to do for every request.

/// Sub-buckets per power of two, as a power of two.
const SUB_BITS: u32 = 6;
const SUB: usize = 1 << SUB_BITS;
/// Buckets for the whole `u64` range.
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB;

/// A histogram of durations in nanoseconds.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: vec![0; BUCKETS], count: 0, sum: 0, min: u64::MAX, max: 0 }
    }
}

fn index(value: u64) -> usize {
    if value < SUB as u64 {
        return value as usize;
    }
    let msb = 63 - value.leading_zeros();
    let group = (msb - SUB_BITS + 1) as usize;
    let sub = (value >> (msb - SUB_BITS)) as usize - SUB;
    group * SUB + sub
}

/// The middle of a bucket's range, the value reported for it.
fn representative(index: usize) -> u64 {
    if index < SUB {
        return index as u64;
    }
    let (group, sub) = (index / SUB, index % SUB);
    let low = ((SUB + sub) as u64) << (group - 1);
    let width = 1u64 << (group - 1);
    low + width / 2
}

impl Histogram {
    /// Records one duration.
    pub fn record(&mut self, nanos: u64) {
        self.counts[index(nanos)] += 1;
        self.count += 1;
        self.sum += u128::from(nanos);
        self.min = self.min.min(nanos);
        self.max = self.max.max(nanos);
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The smallest value, 0 when empty.
    pub fn min(&self) -> u64 {
        if self.count == 0 { 0 } else { self.min }
    }

    /// The largest value, exact.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The mean, 0 when empty.
    pub fn mean(&self) -> u64 {
        if self.count == 0 { 0 } else { (self.sum / u128::from(self.count)) as u64 }
    }

    /// The value at quantile `q` (0.5 for the median), 0 when empty. Clamped to the exact
    /// minimum and maximum, so a single value reports itself.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return representative(i).clamp(self.min, self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_monotonic() {
        let mut last = 0;
        for v in (0..10_000u64).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let i = index(v);
            assert!(i >= last, "{v}");
            assert!(i < BUCKETS);
            last = i;
        }
        assert_eq!(index(63), 63);
        assert_eq!(index(64), 64);
        assert_eq!(index(127), 127);
        assert_eq!(index(128), 128);
        assert_eq!(index(130), 129);
    }

    #[test]
    fn relative_error_is_bounded() {
        for v in [100u64, 1_000, 12_345, 999_999, 1 << 40, 123_456_789_012] {
            let r = representative(index(v));
            let err = (r as f64 - v as f64).abs() / v as f64;
            assert!(err <= 1.0 / SUB as f64, "{v} -> {r}");
        }
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), 0);
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5) as f64;
        assert!((p50 - 500_000.0).abs() / 500_000.0 < 0.02, "{p50}");
        let p99 = h.quantile(0.99) as f64;
        assert!((p99 - 990_000.0).abs() / 990_000.0 < 0.02, "{p99}");
        assert_eq!(h.quantile(1.0), 1_000_000);
        assert_eq!(h.min(), 1000);
        assert_eq!(h.mean(), 500_500);
        let mut other = Histogram::default();
        other.record(7);
        h.merge(&other);
        assert_eq!(h.count(), 1001);
        assert_eq!(h.min(), 7);
        let mut one = Histogram::default();
        one.record(123_456);
        assert_eq!(one.quantile(0.5), 123_456);
    }
}
