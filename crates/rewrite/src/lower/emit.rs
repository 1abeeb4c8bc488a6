//! Emission: one ONNX node (or initializer) per extracted e-class, in order.

use std::collections::HashMap;
use std::sync::Arc;

use egg::Id;
use indexmap::IndexMap;
use transfuse_ir::{AttrValue, Graph, MS_DOMAIN, Node, Tensor};

use super::naming::ClassNames;
use crate::analysis::EGraph;
use crate::error::RewriteError;
use crate::lang::{AttrVal, Onnx, OpNode};
use crate::tensors::TensorOrigin;

/// What emission writes: nodes in order and the initializers they read.
pub(super) struct Emitter<'a> {
    pub(super) egraph: &'a EGraph,
    pub(super) choice: &'a HashMap<Id, Onnx>,
    pub(super) graph: &'a Graph,
    /// Original nodes by their canonical e-node.
    pub(super) original: &'a HashMap<Onnx, usize>,
    pub(super) names: ClassNames<'a>,
    /// For each chosen multi-output node: the output slots read, and by which class.
    pub(super) proj_users: HashMap<Id, Vec<(u32, Id)>>,
    pub(super) nodes: Vec<Node>,
    pub(super) initializers: IndexMap<String, Arc<Tensor>>,
    /// Names of created tensors, so one tensor used by several classes is written once.
    pub(super) created_names: HashMap<u32, String>,
}

impl Emitter<'_> {
    /// Writes class `id`, whose children are already written.
    pub(super) fn emit(&mut self, id: Id) -> Result<(), RewriteError> {
        let node = self.choice.get(&id).cloned().ok_or_else(|| {
            RewriteError::Extraction(format!("no e-node chosen for e-class {id}"))
        })?;
        match &node {
            Onnx::Input(_) | Onnx::Absent | Onnx::Root(_) | Onnx::Proj(..) => Ok(()),
            Onnx::Const(t) => self.emit_const(id, t.0),
            Onnx::Op(data, children) => {
                let inputs = self.input_names(children)?;
                let original = self
                    .original
                    .get(&node)
                    .and_then(|&i| self.graph.nodes.get(i));
                let outputs = if data.outputs > 1 {
                    let declared = original.map(|n| n.outputs.as_slice());
                    self.multi_outputs(id, data.outputs as usize, declared, data.op.as_str())
                } else {
                    vec![self.names.of(id, data.op.as_str())]
                };
                let mut n = match original {
                    Some(n) => {
                        let mut n = n.clone();
                        n.outputs = outputs;
                        n
                    }
                    None => self.new_node(data, outputs),
                };
                n.inputs = inputs;
                self.nodes.push(n);
                Ok(())
            }
            Onnx::Opaque(index, children) => {
                let mut n = self
                    .graph
                    .nodes
                    .get(*index as usize)
                    .cloned()
                    .unwrap_or_default();
                let explicit = n.inputs.len().min(children.len());
                n.inputs = self.input_names(&children[..explicit])?;
                n.outputs = if n.outputs.len() <= 1 {
                    vec![self.names.of(id, &n.op_type)]
                } else {
                    let declared = n.outputs.clone();
                    self.multi_outputs(id, declared.len(), Some(&declared), &n.op_type)
                };
                self.nodes.push(n);
                Ok(())
            }
        }
    }

    fn emit_const(&mut self, id: Id, tensor: u32) -> Result<(), RewriteError> {
        let entry = self
            .egraph
            .analysis
            .tensors
            .get(crate::lang::TensorId(tensor))
            .ok_or_else(|| RewriteError::Extraction(format!("unknown tensor {tensor}")))?;
        match entry.origin {
            TensorOrigin::Initializer => {
                self.initializers
                    .insert(entry.tensor.name.clone(), Arc::clone(&entry.tensor));
            }
            TensorOrigin::ConstantNode(index) => {
                let name = self.names.of(id, "Constant");
                let mut n = self.graph.nodes.get(index).cloned().unwrap_or_default();
                n.outputs = vec![name];
                self.nodes.push(n);
            }
            TensorOrigin::Attribute | TensorOrigin::Created => {
                let name = match self.created_names.get(&tensor) {
                    Some(n) => n.clone(),
                    None => {
                        let n = self.names.of(id, "const");
                        self.created_names.insert(tensor, n.clone());
                        n
                    }
                };
                self.names.set(id, name.clone());
                self.initializers
                    .insert(name.clone(), Arc::new(entry.tensor.renamed(name)));
            }
        }
        Ok(())
    }

    /// Output names of a multi-output node: read slots carry their class's name; a slot the
    /// input declared keeps a name even when unused (see [`ClassNames::unused_output`]); the
    /// other slots of a new node stay `""` (optional, not produced).
    fn multi_outputs(
        &mut self,
        id: Id,
        count: usize,
        declared: Option<&[String]>,
        stem: &str,
    ) -> Vec<String> {
        let mut outs = vec![String::new(); count];
        let mut users = self.proj_users.get(&id).cloned().unwrap_or_default();
        users.sort();
        for (slot, pid) in users {
            if let Some(o) = outs.get_mut(slot as usize)
                && o.is_empty()
            {
                *o = self.names.of(pid, stem);
            }
        }
        if let Some(declared) = declared {
            for (slot, o) in outs.iter_mut().enumerate() {
                let had = declared.get(slot).filter(|d| !d.is_empty());
                if o.is_empty() && had.is_some() {
                    *o = self.names.unused_output(had.map(String::as_str), stem);
                }
            }
        }
        outs
    }

    /// A node the rewrite created.
    fn new_node(&mut self, data: &OpNode, mut outputs: Vec<String>) -> Node {
        let op = data.op.as_str();
        let mut n = Node::new(op, data.domain.as_str(), Vec::new(), Vec::new());
        n.name = self.names.names.fresh(op);
        for (k, v) in data.attrs.as_deref().unwrap_or(&[]) {
            n = n.with_attr(k.as_str(), attr_value(self.egraph, v));
        }
        // Optional trailing outputs that nothing reads are left off, except those the op's
        // schema requires to be declared (named, unused).
        let declared = declared_outputs(data.domain.as_str(), op);
        while outputs.len() > declared.max(1) && outputs.last().is_some_and(String::is_empty) {
            outputs.pop();
        }
        for o in outputs.iter_mut().take(declared).filter(|o| o.is_empty()) {
            *o = self.names.names.fresh(op);
        }
        n.outputs = outputs;
        n
    }

    fn input_names(&self, children: &[Id]) -> Result<Vec<String>, RewriteError> {
        children
            .iter()
            .map(|&c| {
                let c = self.egraph.find(c);
                match self.choice.get(&c) {
                    Some(Onnx::Absent) => Ok(String::new()),
                    _ => self.names.get(c).cloned().ok_or_else(|| {
                        RewriteError::Extraction(format!(
                            "e-class {c} is used before it is written"
                        ))
                    }),
                }
            })
            .collect()
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
