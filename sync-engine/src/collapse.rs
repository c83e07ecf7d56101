//! Collapsing a range of the change feed to one net effect per dbId.
//!
//! The feed can report the same dbId several times in one range (added then updated, updated then
//! deleted, deleted then added again). The lake contract allows one row per dbId per file, so the
//! range is reduced first:
//! - the last entry is DELETED → one DELETED row (a tombstone), whatever came before;
//! - otherwise, if the range saw the row ADDED (at the start, or again after a deletion) → one
//!   ADDED row with the row's current data;
//! - otherwise → one UPDATED row with the row's current data.

use std::collections::HashMap;

use xledger_model::page::{DeltaEdge, MutationType};

/// The net effect of a feed range, in first-seen order (stable output for stable input).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Collapsed {
    /// dbIds whose current row must be fetched, with the mutation type to write.
    pub upserts: Vec<(i64, MutationType)>,
    /// dbIds to write as DELETED rows.
    pub deletions: Vec<i64>,
    /// Feed entries read (before collapsing).
    pub entries: u64,
}

impl Collapsed {
    /// Rows the range will write at most (each dbId once).
    pub fn distinct_ids(&self) -> usize {
        self.upserts.len() + self.deletions.len()
    }
}

#[derive(Debug, Clone, Copy)]
struct Net {
    order: usize,
    added: bool,
    last: MutationType,
}

/// Accumulates feed pages for one range; [`Collapser::finish`] gives the net effect.
#[derive(Debug, Default)]
pub struct Collapser {
    by_id: HashMap<i64, Net>,
    entries: u64,
}

impl Collapser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds feed entries in feed order.
    pub fn push(&mut self, edges: &[DeltaEdge]) {
        for edge in edges {
            self.entries += 1;
            let id = edge.node.db_id.0;
            let kind = edge.node.mutation_type;
            let next_order = self.by_id.len();
            let net = self.by_id.entry(id).or_insert(Net { order: next_order, added: false, last: kind });
            net.last = kind;
            if kind == MutationType::Added {
                net.added = true;
            }
        }
    }

    /// Feed entries pushed so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Distinct dbIds seen so far.
    pub fn distinct_ids(&self) -> usize {
        self.by_id.len()
    }

    pub fn finish(self) -> Collapsed {
        let mut nets: Vec<(i64, Net)> = self.by_id.into_iter().collect();
        nets.sort_by_key(|(_, n)| n.order);
        let mut out = Collapsed { entries: self.entries, ..Collapsed::default() };
        for (id, net) in nets {
            match net.last {
                MutationType::Deleted => out.deletions.push(id),
                _ if net.added => out.upserts.push((id, MutationType::Added)),
                _ => out.upserts.push((id, MutationType::Updated)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xledger_model::page::DeltaNode;
    use xledger_model::scalars::Int64String;

    fn feed(entries: &[(i64, MutationType)]) -> Vec<DeltaEdge> {
        entries
            .iter()
            .enumerate()
            .map(|(i, &(id, kind))| DeltaEdge {
                cursor: format!("c{i}"),
                node: DeltaNode { db_id: Int64String(id), mutation_type: kind },
            })
            .collect()
    }

    fn collapse(entries: &[(i64, MutationType)]) -> Collapsed {
        let mut c = Collapser::new();
        c.push(&feed(entries));
        c.finish()
    }

    use MutationType::{Added as A, Deleted as D, Updated as U};

    #[test]
    fn added_then_updated_is_one_added_row() {
        let c = collapse(&[(1, A), (1, U), (1, U)]);
        assert_eq!(c.upserts, vec![(1, A)]);
        assert!(c.deletions.is_empty());
        assert_eq!(c.entries, 3);
    }

    #[test]
    fn anything_then_deleted_is_one_deletion() {
        assert_eq!(collapse(&[(1, A), (1, D)]).deletions, vec![1]);
        assert_eq!(collapse(&[(2, U), (2, U), (2, D)]).deletions, vec![2]);
        assert!(collapse(&[(2, U), (2, D)]).upserts.is_empty());
    }

    #[test]
    fn deleted_then_added_is_the_current_row() {
        assert_eq!(collapse(&[(3, D), (3, A)]).upserts, vec![(3, A)]);
        assert_eq!(collapse(&[(3, U), (3, D), (3, A), (3, U)]).upserts, vec![(3, A)]);
    }

    #[test]
    fn updates_only_stay_updates_and_order_is_first_seen() {
        let c = collapse(&[(9, U), (4, U), (9, U), (5, D), (4, A)]);
        assert_eq!(c.upserts, vec![(9, U), (4, A)]);
        assert_eq!(c.deletions, vec![5]);
        assert_eq!(c.distinct_ids(), 3);
    }

    #[test]
    fn pages_accumulate_across_pushes() {
        let mut c = Collapser::new();
        c.push(&feed(&[(1, A)]));
        c.push(&feed(&[(1, D)]));
        c.push(&feed(&[(1, A)]));
        assert_eq!(c.entries(), 3);
        assert_eq!(c.finish().upserts, vec![(1, A)]);
    }
}
