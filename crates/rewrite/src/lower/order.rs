//! The order in which extracted e-classes are written.

use std::collections::HashMap;

use egg::{Id, Language};

use crate::analysis::EGraph;
use crate::error::RewriteError;
use crate::lang::Onnx;

/// The classes that `outputs` need, children before parents (an iterative post-order walk:
/// graphs can be deep). Errors on a cycle or a class without a chosen e-node.
pub(super) fn post_order(
    egraph: &EGraph,
    choice: &HashMap<Id, Onnx>,
    outputs: &[Id],
) -> Result<Vec<Id>, RewriteError> {
    let find = |id: Id| egraph.find(id);
    let mut order: Vec<Id> = Vec::new();
    let mut state: HashMap<Id, u8> = HashMap::new(); // 1 = on the stack, 2 = done
    let cycle = |id: Id| {
        RewriteError::Extraction(format!(
            "the extracted graph has a cycle through e-class {id}"
        ))
    };
    for &out in outputs {
        let mut stack: Vec<(Id, bool)> = vec![(find(out), false)];
        while let Some((id, expanded)) = stack.pop() {
            if expanded {
                state.insert(id, 2);
                order.push(id);
                continue;
            }
            match state.get(&id) {
                Some(2) => continue,
                Some(_) => return Err(cycle(id)),
                None => {}
            }
            state.insert(id, 1);
            stack.push((id, true));
            let node = choice.get(&id).ok_or_else(|| {
                RewriteError::Extraction(format!("no e-node chosen for e-class {id}"))
            })?;
            for &c in node.children().iter().rev() {
                let c = find(c);
                match state.get(&c) {
                    Some(2) => {}
                    Some(_) => return Err(cycle(c)),
                    None => stack.push((c, false)),
                }
            }
        }
    }
    Ok(order)
}
