//! Slow-start batching, as upstream's `slowStartBatch`: a burst of creations starts with one
//! call and doubles the batch after each fully successful one, so a failing request (quota,
//! admission) costs one call rather than hundreds.

/// Upstream's `SlowStartInitialBatchSize`.
pub const INITIAL_BATCH_SIZE: usize = 1;

/// The batch sizes for `count` calls: `initial`, doubling, the last one trimmed to fit.
pub fn batch_sizes(count: usize, initial: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut remaining = count;
    let mut batch = remaining.min(initial.max(1));
    while batch > 0 {
        sizes.push(batch);
        remaining -= batch;
        batch = (batch * 2).min(remaining);
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_double_and_sum_to_count() {
        let cases: &[(usize, &[usize])] = &[
            (0, &[]),
            (1, &[1]),
            (2, &[1, 1]),
            (3, &[1, 2]),
            (10, &[1, 2, 4, 3]),
            (15, &[1, 2, 4, 8]),
            (16, &[1, 2, 4, 8, 1]),
        ];
        for (count, want) in cases {
            assert_eq!(
                batch_sizes(*count, INITIAL_BATCH_SIZE),
                *want,
                "count {count}"
            );
        }
    }
}
