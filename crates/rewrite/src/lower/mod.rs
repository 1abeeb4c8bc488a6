//! Extracted e-graph -> ONNX graph.
//!
//! Contracts: graph inputs and outputs keep their names and order; every e-class that held an
//! original value keeps that value's name (the first one when several merged), whichever
//! e-node was extracted; new values get fresh names that collide with nothing; a node that
//! is an original node (same op, attributes and inputs) is written back as that node, with
//! its name, doc string and metadata, with every output it declared (an unused one keeps its
//! name); only what the outputs need is written (dead nodes and unused initializers
//! disappear); nodes come out topologically sorted.
//!
//! Three steps: [`naming`] decides the value names, [`order`] the order of the extracted
//! classes, [`emit`] writes one node per class. With fixed input shapes, [`fold`] then
//! replaces the shape computations by constants.

mod emit;
mod fold;
mod naming;
mod order;

use std::collections::{HashMap, HashSet};

use egg::{Id, Language};
use indexmap::IndexMap;
use transfuse_ir::{Graph, MS_DOMAIN, Model, Node};

use crate::analysis::EGraph;
use crate::error::RewriteError;
use crate::extract::Extraction;
use crate::import::Imported;
use crate::lang::Onnx;
use emit::Emitter;
pub use fold::{MAX_FOLDED_ELEMENTS, MAX_FOLDED_INDEX_ELEMENTS};
pub(crate) use fold::{StaticFacts, fold_constants};
use naming::ClassNames;

/// The original nodes by their canonical e-node (children are canonical e-class ids after
/// the run); the first node wins when several became equal.
pub(crate) fn canonical_originals(imported: &Imported, egraph: &EGraph) -> HashMap<Onnx, usize> {
    let mut original: HashMap<Onnx, usize> = HashMap::new();
    for (enode, index) in &imported.original_nodes {
        original
            .entry(enode.clone().map_children(|c| egraph.find(c)))
            .or_insert(*index);
    }
    original
}

/// Writes the extracted graph as a model (a copy of `model` with a new main graph), with the
/// element type and static shape the e-graph knows for each written value.
/// `original` is [`canonical_originals`] of the same e-graph.
pub(crate) fn lower(
    model: &Model,
    imported: &Imported,
    egraph: &EGraph,
    extraction: &Extraction,
    original: &HashMap<Onnx, usize>,
) -> Result<(Model, StaticFacts), RewriteError> {
    let graph = &model.graph;
    let find = |id: Id| egraph.find(id);
    let choice = &extraction.choice;

    let root = choice.get(&find(imported.root));
    let Some(Onnx::Root(outputs)) = root else {
        return Err(RewriteError::Extraction(
            "the root e-class did not extract to the root node".into(),
        ));
    };
    let order = order::post_order(egraph, choice, outputs)?;

    let mut proj_users: HashMap<Id, Vec<(u32, Id)>> = HashMap::new();
    for (&id, node) in choice {
        if let Onnx::Proj(slot, [tuple]) = node {
            proj_users
                .entry(find(*tuple))
                .or_default()
                .push((*slot, id));
        }
    }
    let mut emitter = Emitter {
        egraph,
        choice,
        graph,
        original,
        names: ClassNames::new(graph, imported, egraph, choice),
        proj_users,
        nodes: Vec::new(),
        initializers: IndexMap::new(),
        created_names: HashMap::new(),
    };
    for &id in &order {
        emitter.emit(id)?;
    }
    let Emitter {
        mut nodes,
        initializers,
        mut names,
        ..
    } = emitter;

    // Pinned names that the chosen value does not carry: copy through an Identity.
    let mut defined: HashSet<String> = nodes
        .iter()
        .flat_map(|n| n.outputs.iter().cloned())
        .collect();
    defined.extend(initializers.keys().cloned());
    defined.extend(graph.inputs.iter().map(|i| i.name.clone()));
    for (id, pin) in &imported.pinned {
        if defined.contains(pin) {
            continue;
        }
        let source = names
            .get(*id)
            .cloned()
            .ok_or_else(|| RewriteError::Extraction(format!("value '{pin}' was not written")))?;
        let mut n = Node::new("Identity", "", vec![source], vec![pin.clone()]);
        n.name = names.names.fresh("Identity");
        nodes.push(n);
        defined.insert(pin.clone());
    }

    let mut out = Graph {
        nodes,
        sparse_initializers: graph.sparse_initializers.clone(),
        ..graph.clone_without_nodes()
    };
    // Original initializers keep their file order; created ones follow.
    for (name, t) in &graph.initializers {
        if initializers.contains_key(name) || graph.inputs.iter().any(|i| &i.name == name) {
            out.initializers
                .insert(name.clone(), std::sync::Arc::clone(t));
        }
    }
    for (name, t) in initializers {
        out.initializers.entry(name).or_insert(t);
    }
    out.value_info.retain(|v| defined.contains(&v.name));
    let facts = fold::class_facts(egraph, names.named());
    out.check()?;
    let mut model = model.clone_with_graph(out);
    if model.graph.nodes.iter().any(|n| n.domain == MS_DOMAIN) {
        // Version 1 at least: an input may import com.microsoft at version 0.
        model.require_opset(MS_DOMAIN, 1);
    }
    Ok((model, facts))
}
