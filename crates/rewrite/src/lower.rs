//! Extracted e-graph -> ONNX graph.
//!
//! Contracts: graph inputs and outputs keep their names and order; every e-class that held an
//! original value keeps that value's name (the first one when several merged), whichever
//! e-node was extracted; new values get fresh names that collide with nothing; a node that
//! is an original node (same op, attributes and inputs) is written back as that node, with
//! its name, doc string and metadata; only what the outputs need is written (dead nodes and
//! unused initializers disappear); nodes come out topologically sorted.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use egg::{Id, Language};
use transfuse_ir::{AttrValue, Graph, MS_DOMAIN, Model, Node, Tensor};

use crate::analysis::EGraph;
use crate::error::RewriteError;
use crate::extract::Extraction;
use crate::import::Imported;
use crate::lang::{AttrVal, Onnx};
use crate::tensors::TensorOrigin;

/// Fresh, unique names.
struct Names {
    taken: HashSet<String>,
    counter: usize,
}

impl Names {
    fn fresh(&mut self, stem: &str) -> String {
        loop {
            let name = format!("{stem}_fused_{}", self.counter);
            self.counter += 1;
            if self.taken.insert(name.clone()) {
                return name;
            }
        }
    }
}

fn attr_value(egraph: &EGraph, v: &AttrVal) -> AttrValue {
    match v {
        AttrVal::Int(i) => AttrValue::Int(*i),
        AttrVal::Float(f) => AttrValue::Float(f.get()),
        AttrVal::Str(s) => AttrValue::String(s.to_vec()),
        AttrVal::Ints(v) => AttrValue::Ints(v.to_vec()),
        AttrVal::Floats(v) => AttrValue::Floats(v.iter().map(|f| f.get()).collect()),
        AttrVal::Strs(v) => AttrValue::Strings(v.iter().map(|s| s.to_vec()).collect()),
        AttrVal::Tensor(t) => match egraph.analysis.tensors.tensor(*t) {
            Some(t) => AttrValue::Tensor((**t).clone()),
            None => AttrValue::Undefined,
        },
    }
}

/// How many outputs a new node of this op must declare even when nothing reads them:
/// ONNX Runtime 1.31.1's shape inference for `EmbedLayerNormalization` writes the type of
/// output 1 (`mask_index`) unconditionally and rejects the node without it.
fn declared_outputs(domain: &str, op: &str) -> usize {
    match (domain, op) {
        (MS_DOMAIN, "EmbedLayerNormalization") => 2,
        _ => 1,
    }
}

/// Writes the extracted graph as a model (a copy of `model` with a new main graph).
pub fn lower(
    model: &Model,
    imported: &Imported,
    egraph: &EGraph,
    extraction: &Extraction,
) -> Result<Model, RewriteError> {
    let graph = &model.graph;
    let find = |id: Id| egraph.find(id);
    let choice = &extraction.choice;
    let chosen = |id: Id| -> Result<&Onnx, RewriteError> {
        choice
            .get(&find(id))
            .ok_or_else(|| RewriteError::Extraction(format!("no e-node chosen for e-class {id}")))
    };

    // Original nodes by their current (canonical) e-node.
    let mut original: HashMap<Onnx, usize> = HashMap::new();
    for (enode, index) in &imported.original_nodes {
        original
            .entry(enode.clone().map_children(find))
            .or_insert(*index);
    }

    // Names every value class will carry: pins first, then original names.
    let mut class_name: HashMap<Id, String> = HashMap::new();
    let mut names = Names {
        taken: HashSet::new(),
        counter: 0,
    };
    for (name, _) in &imported.names {
        names.taken.insert(name.clone());
    }
    for n in &graph.nodes {
        names.taken.insert(n.name.clone());
        names.taken.extend(n.outputs.iter().cloned());
    }
    // Leaves keep their own names (an input or initializer is its name).
    for (&id, node) in choice {
        match node {
            Onnx::Input(s) => {
                class_name.insert(id, s.as_str().to_string());
            }
            Onnx::Const(t) => {
                if let Some(e) = egraph.analysis.tensors.get(*t)
                    && e.origin == TensorOrigin::Initializer
                {
                    class_name.insert(id, e.tensor.name.clone());
                }
            }
            _ => {}
        }
    }
    for (id, name) in &imported.pinned {
        class_name.entry(find(*id)).or_insert_with(|| name.clone());
    }
    for (name, id) in &imported.names {
        let id = find(*id);
        if choice.contains_key(&id) {
            class_name.entry(id).or_insert_with(|| name.clone());
        }
    }

    // Which outputs of each chosen multi-output node are used, and by which class.
    let mut proj_users: HashMap<Id, Vec<(u32, Id)>> = HashMap::new();
    for (&id, node) in choice {
        if let Onnx::Proj(slot, [tuple]) = node {
            proj_users
                .entry(find(*tuple))
                .or_default()
                .push((*slot, id));
        }
    }

    // Post-order walk from the root (iterative: graphs can be deep).
    let root_node = chosen(imported.root)?;
    let Onnx::Root(outputs) = root_node else {
        return Err(RewriteError::Extraction(
            "the root e-class did not extract to the root node".into(),
        ));
    };
    let mut order: Vec<Id> = Vec::new();
    let mut state: HashMap<Id, u8> = HashMap::new(); // 1 = on the stack, 2 = done
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
                Some(_) => {
                    return Err(RewriteError::Extraction(format!(
                        "the extracted graph has a cycle through e-class {id}"
                    )));
                }
                None => {}
            }
            state.insert(id, 1);
            stack.push((id, true));
            for &c in chosen(id)?.children().iter().rev() {
                let c = find(c);
                match state.get(&c) {
                    Some(2) => {}
                    Some(_) => {
                        return Err(RewriteError::Extraction(format!(
                            "the extracted graph has a cycle through e-class {c}"
                        )));
                    }
                    None => stack.push((c, false)),
                }
            }
        }
    }

    let mut nodes: Vec<Node> = Vec::new();
    let mut initializers: indexmap::IndexMap<String, Arc<Tensor>> = indexmap::IndexMap::new();
    let mut created_names: HashMap<u32, String> = HashMap::new();
    let value_name =
        |id: Id, class_name: &mut HashMap<Id, String>, names: &mut Names, stem: &str| -> String {
            class_name
                .entry(find(id))
                .or_insert_with(|| names.fresh(stem))
                .clone()
        };
    for &id in &order {
        let node = chosen(id)?.clone();
        match &node {
            Onnx::Input(_) | Onnx::Absent | Onnx::Root(_) | Onnx::Proj(..) => {}
            Onnx::Const(t) => {
                let entry =
                    egraph.analysis.tensors.get(*t).ok_or_else(|| {
                        RewriteError::Extraction(format!("unknown tensor {}", t.0))
                    })?;
                match entry.origin {
                    TensorOrigin::Initializer => {
                        initializers.insert(entry.tensor.name.clone(), Arc::clone(&entry.tensor));
                    }
                    TensorOrigin::ConstantNode(index) => {
                        let name = value_name(id, &mut class_name, &mut names, "Constant");
                        let mut n = graph.nodes.get(index).cloned().unwrap_or_default();
                        n.outputs = vec![name];
                        nodes.push(n);
                    }
                    TensorOrigin::Attribute | TensorOrigin::Created => {
                        let name = match created_names.get(&t.0) {
                            Some(n) => n.clone(),
                            None => {
                                let n = value_name(id, &mut class_name, &mut names, "const");
                                created_names.insert(t.0, n.clone());
                                n
                            }
                        };
                        class_name.insert(id, name.clone());
                        initializers.insert(name.clone(), Arc::new(entry.tensor.renamed(name)));
                    }
                }
            }
            Onnx::Op(data, children) => {
                let inputs = input_names(egraph, choice, children, &class_name)?;
                let outputs = if data.outputs > 1 {
                    let mut outs = vec![String::new(); data.outputs as usize];
                    let mut users = proj_users.get(&id).cloned().unwrap_or_default();
                    users.sort();
                    for (slot, pid) in users {
                        if let Some(o) = outs.get_mut(slot as usize) {
                            *o = value_name(pid, &mut class_name, &mut names, data.op.as_str());
                        }
                    }
                    outs
                } else {
                    vec![value_name(
                        id,
                        &mut class_name,
                        &mut names,
                        data.op.as_str(),
                    )]
                };
                let mut n = match original.get(&node) {
                    Some(&index) => graph.nodes.get(index).cloned().unwrap_or_default(),
                    None => {
                        let mut n = Node::new(
                            data.op.as_str(),
                            data.domain.as_str(),
                            Vec::new(),
                            Vec::new(),
                        );
                        n.name = names.fresh(data.op.as_str());
                        for (k, v) in data.attrs.as_deref().unwrap_or(&[]) {
                            n = n.with_attr(k.as_str(), attr_value(egraph, v));
                        }
                        // Optional trailing outputs that nothing reads are left off, except
                        // those the op's schema requires to be declared (named, unused).
                        let mut outputs = outputs.clone();
                        let declared = declared_outputs(data.domain.as_str(), data.op.as_str());
                        while outputs.len() > declared.max(1)
                            && outputs.last().is_some_and(String::is_empty)
                        {
                            outputs.pop();
                        }
                        for o in outputs.iter_mut().take(declared).filter(|o| o.is_empty()) {
                            *o = names.fresh(data.op.as_str());
                        }
                        n.outputs = outputs;
                        n
                    }
                };
                if original.contains_key(&node) {
                    n.outputs = outputs;
                }
                n.inputs = inputs;
                nodes.push(n);
            }
            Onnx::Opaque(index, children) => {
                let mut n = graph
                    .nodes
                    .get(*index as usize)
                    .cloned()
                    .unwrap_or_default();
                let explicit = n.inputs.len().min(children.len());
                n.inputs = input_names(egraph, choice, &children[..explicit], &class_name)?;
                if n.outputs.len() <= 1 {
                    n.outputs = vec![value_name(id, &mut class_name, &mut names, &n.op_type)];
                } else {
                    let mut outs = vec![String::new(); n.outputs.len()];
                    for (slot, pid) in proj_users.get(&id).cloned().unwrap_or_default() {
                        if let Some(o) = outs.get_mut(slot as usize) {
                            *o = value_name(pid, &mut class_name, &mut names, &n.op_type);
                        }
                    }
                    n.outputs = outs;
                }
                nodes.push(n);
            }
        }
    }

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
        let source = class_name
            .get(&find(*id))
            .cloned()
            .ok_or_else(|| RewriteError::Extraction(format!("value '{pin}' was not written")))?;
        let mut n = Node::new("Identity", "", vec![source], vec![pin.clone()]);
        n.name = names.fresh("Identity");
        nodes.push(n);
        defined.insert(pin.clone());
    }

    let mut out = Graph {
        nodes,
        initializers: Default::default(),
        sparse_initializers: graph.sparse_initializers.clone(),
        ..graph.clone_without_nodes()
    };
    // Original initializers keep their file order; created ones follow.
    for (name, t) in &graph.initializers {
        if initializers.contains_key(name) || graph.inputs.iter().any(|i| &i.name == name) {
            out.initializers.insert(name.clone(), Arc::clone(t));
        }
    }
    for (name, t) in initializers {
        out.initializers.entry(name).or_insert(t);
    }
    out.value_info.retain(|v| defined.contains(&v.name));
    out.check()?;
    let mut model = Model {
        graph: out,
        ..model.clone_without_graph()
    };
    if model.graph.nodes.iter().any(|n| n.domain == MS_DOMAIN) {
        model.ensure_opset(MS_DOMAIN, 1);
    }
    Ok(model)
}

fn input_names(
    egraph: &EGraph,
    choice: &HashMap<Id, Onnx>,
    children: &[Id],
    class_name: &HashMap<Id, String>,
) -> Result<Vec<String>, RewriteError> {
    children
        .iter()
        .map(|&c| {
            let c = egraph.find(c);
            match choice.get(&c) {
                Some(Onnx::Absent) => Ok(String::new()),
                _ => class_name.get(&c).cloned().ok_or_else(|| {
                    RewriteError::Extraction(format!("e-class {c} is used before it is written"))
                }),
            }
        })
        .collect()
}

/// Copies of the model and graph without their (large) node and initializer lists.
trait CloneWithout {
    fn clone_without_nodes(&self) -> Graph;
}

impl CloneWithout for Graph {
    fn clone_without_nodes(&self) -> Graph {
        Graph {
            name: self.name.clone(),
            doc_string: self.doc_string.clone(),
            inputs: self.inputs.clone(),
            outputs: self.outputs.clone(),
            value_info: self.value_info.clone(),
            nodes: Vec::new(),
            initializers: Default::default(),
            sparse_initializers: Vec::new(),
            quantization_annotation: self.quantization_annotation.clone(),
            metadata_props: self.metadata_props.clone(),
        }
    }
}

trait CloneModelWithout {
    fn clone_without_graph(&self) -> Model;
}

impl CloneModelWithout for Model {
    fn clone_without_graph(&self) -> Model {
        Model {
            ir_version: self.ir_version,
            opset_imports: self.opset_imports.clone(),
            producer_name: self.producer_name.clone(),
            producer_version: self.producer_version.clone(),
            domain: self.domain.clone(),
            model_version: self.model_version,
            doc_string: self.doc_string.clone(),
            graph: Graph::default(),
            metadata_props: self.metadata_props.clone(),
            training_info: self.training_info.clone(),
            functions: self.functions.clone(),
            configuration: self.configuration.clone(),
        }
    }
}
