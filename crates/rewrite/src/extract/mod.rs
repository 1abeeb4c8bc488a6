//! DAG-aware greedy extraction.
//!
//! egg's default extractor sums costs over the expression *tree*, so a subterm shared by many
//! users is paid once per use; on a BERT-size graph that mis-selects fusions. Here the cost of
//! choosing an e-node is the summed cost of the distinct e-classes its sub-DAG needs (each
//! class once), computed bottom-up with a worklist until nothing improves. Each class keeps
//! the set of classes its choice depends on as a bitset; a choice whose set contains its own
//! class would be a cycle and is skipped.
//!
//! Deterministic: classes are visited in id order and ties keep the earlier choice.

mod cost;

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use egg::{Id, Language};

use crate::analysis::EGraph;
use crate::error::RewriteError;
use crate::lang::Onnx;

pub(crate) use cost::CostModel;

/// The chosen e-node of every e-class reachable from the root.
#[derive(Debug, Clone)]
pub struct Extraction {
    /// Class (canonical id) -> chosen e-node (children canonical).
    pub choice: HashMap<Id, Onnx>,
}

#[derive(Clone)]
struct Best {
    node: usize,
    cost: f64,
    total: f64,
    deps: Rc<Vec<u64>>,
}

fn bit_set(bits: &mut [u64], i: usize) {
    bits[i / 64] |= 1 << (i % 64);
}

fn bit_get(bits: &[u64], i: usize) -> bool {
    bits[i / 64] & (1 << (i % 64)) != 0
}

/// Extracts the cheapest DAG for `root`. `cost` gives each e-node's own cost; an infinite
/// cost means "never choose".
pub fn extract(
    egraph: &EGraph,
    root: Id,
    cost: impl Fn(&Onnx) -> f64,
) -> Result<Extraction, RewriteError> {
    let mut ids: Vec<Id> = egraph.classes().map(|c| c.id).collect();
    ids.sort();
    let index: HashMap<Id, usize> = ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let words = ids.len().div_ceil(64);
    let class_of = |id: Id| index.get(&egraph.find(id)).copied();

    // Children (as class indices) and own cost of every node; parents of every class.
    let mut nodes: Vec<Vec<(f64, Vec<usize>)>> = Vec::with_capacity(ids.len());
    let mut parents: Vec<Vec<(usize, usize)>> = vec![Vec::new(); ids.len()];
    for (ci, &id) in ids.iter().enumerate() {
        let mut list = Vec::with_capacity(egraph[id].nodes.len());
        for (ni, n) in egraph[id].nodes.iter().enumerate() {
            let children: Vec<usize> = n.children().iter().filter_map(|&c| class_of(c)).collect();
            for &c in &children {
                parents[c].push((ci, ni));
            }
            list.push((cost(n), children));
        }
        nodes.push(list);
    }

    let mut best: Vec<Option<Best>> = vec![None; ids.len()];
    let mut queue: VecDeque<(usize, usize)> = VecDeque::new();
    let mut queued: Vec<Vec<bool>> = nodes.iter().map(|l| vec![false; l.len()]).collect();
    for (ci, list) in nodes.iter().enumerate() {
        for (ni, (c, children)) in list.iter().enumerate() {
            if children.is_empty() && c.is_finite() {
                queue.push_back((ci, ni));
                queued[ci][ni] = true;
            }
        }
    }
    while let Some((ci, ni)) = queue.pop_front() {
        queued[ci][ni] = false;
        let (own, children) = &nodes[ci][ni];
        if !own.is_finite() {
            continue;
        }
        let mut deps = vec![0u64; words];
        let mut ready = true;
        for &c in children {
            match &best[c] {
                Some(b) => deps
                    .iter_mut()
                    .zip(b.deps.iter())
                    .for_each(|(d, s)| *d |= s),
                None => {
                    ready = false;
                    break;
                }
            }
        }
        if !ready || bit_get(&deps, ci) {
            continue;
        }
        let mut total = *own;
        for (w, &word) in deps.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let b = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if let Some(x) = &best[w * 64 + b] {
                    total += x.cost;
                }
            }
        }
        let better = match &best[ci] {
            None => true,
            Some(b) => total < b.total - 1e-9,
        };
        if better {
            bit_set(&mut deps, ci);
            best[ci] = Some(Best {
                node: ni,
                cost: *own,
                total,
                deps: Rc::new(deps),
            });
            for &(pc, pn) in &parents[ci] {
                if !queued[pc][pn] {
                    queued[pc][pn] = true;
                    queue.push_back((pc, pn));
                }
            }
        }
    }

    let root_class = class_of(root).ok_or(RewriteError::Extraction(
        "the root e-class is missing".into(),
    ))?;
    let mut chosen: Vec<Option<usize>> = best.iter().map(|b| b.as_ref().map(|b| b.node)).collect();
    refine(&nodes, &mut chosen, root_class);

    // Follow the choices from the root.
    let (reachable, _) = reach(&nodes, &chosen, root_class).ok_or_else(|| {
        RewriteError::Extraction("the extracted graph has a cycle or a class without choice".into())
    })?;
    let mut choice = HashMap::new();
    for (ci, &r) in reachable.iter().enumerate() {
        if let (true, Some(ni)) = (r, chosen[ci]) {
            let node = egraph[ids[ci]].nodes[ni]
                .clone()
                .map_children(|c| egraph.find(c));
            choice.insert(ids[ci], node);
        }
    }
    Ok(Extraction { choice })
}

/// The classes reachable from `root` under `chosen`, and their summed cost; `None` when a
/// reachable class has no choice or the choices form a cycle.
fn reach(
    nodes: &[Vec<(f64, Vec<usize>)>],
    chosen: &[Option<usize>],
    root: usize,
) -> Option<(Vec<bool>, f64)> {
    // 0 = unseen, 1 = on the path, 2 = done
    let mut state = vec![0u8; nodes.len()];
    let mut total = 0.0;
    let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
    state[root] = 1;
    while let Some((ci, k)) = stack.pop() {
        let ni = chosen[ci]?;
        let (cost, children) = &nodes[ci][ni];
        if let Some(&c) = children.get(k) {
            stack.push((ci, k + 1));
            match state[c] {
                0 => {
                    state[c] = 1;
                    stack.push((c, 0));
                }
                1 => return None,
                _ => {}
            }
        } else {
            state[ci] = 2;
            total += cost;
        }
    }
    Some((state.into_iter().map(|s| s == 2).collect(), total))
}

/// Local improvement of a greedy extraction: switch a class to an e-node whose inputs are all
/// already extracted when that lowers the total (for example, reading a residual sum from
/// the fused node that is extracted anyway instead of from an equivalent one). Every accepted
/// switch strictly lowers the total, so this terminates.
fn refine(nodes: &[Vec<(f64, Vec<usize>)>], chosen: &mut [Option<usize>], root: usize) {
    let Some((mut reachable, mut total)) = reach(nodes, chosen, root) else {
        return;
    };
    let mut improved = true;
    while improved {
        improved = false;
        for ci in 0..nodes.len() {
            if !reachable[ci] {
                continue;
            }
            let Some(current) = chosen[ci] else { continue };
            for (ni, (cost, children)) in nodes[ci].iter().enumerate() {
                if ni == current
                    || *cost > nodes[ci][current].0
                    || !children.iter().all(|&c| reachable[c])
                {
                    continue;
                }
                chosen[ci] = Some(ni);
                match reach(nodes, chosen, root) {
                    Some((r, t)) if t < total - 1e-9 => {
                        reachable = r;
                        total = t;
                        improved = true;
                        break;
                    }
                    _ => chosen[ci] = Some(current),
                }
            }
        }
    }
}
