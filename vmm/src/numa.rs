//! How guest RAM is shared among NUMA nodes, the same way on both backends:
//! equal 2 MiB-aligned shares in node order, the last node taking the rest.

/// Alignment of every share but the last (a large page).
pub const SHARE_ALIGN: u64 = 2 << 20;

/// The bytes of `total` that each of `nodes` nodes gets, in node order; a
/// share is 0 when `total` is too small to give every node [`SHARE_ALIGN`].
pub fn node_shares(total: u64, nodes: u32) -> Vec<u64> {
    let nodes = nodes.max(1);
    let each = (total / u64::from(nodes)) & !(SHARE_ALIGN - 1);
    let mut shares: Vec<u64> = (0..nodes).map(|_| each).collect();
    if let Some(last) = shares.last_mut() {
        *last = total - each * u64::from(nodes - 1);
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_aligned_and_add_up() {
        assert_eq!(node_shares(512 << 20, 1), [512 << 20]);
        assert_eq!(node_shares(512 << 20, 2), [256 << 20, 256 << 20]);
        assert_eq!(
            node_shares(1000 << 20, 3),
            [332 << 20, 332 << 20, 336 << 20]
        );
        assert_eq!(node_shares(3 << 20, 2), [0, 3 << 20]);
        assert_eq!(node_shares(64 << 20, 0), [64 << 20], "no nodes means one");
    }
}
