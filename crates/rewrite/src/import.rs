//! ONNX graph -> e-graph.

use std::collections::HashMap;
use std::sync::Arc;

use egg::{Id, Symbol};
use transfuse_ir::{AttrValue, Attribute, Dim, Graph, Model, Node, Tensor, ValueType};

use crate::analysis::{EGraph, OnnxAnalysis, ValueFacts};
use crate::error::RewriteError;
use crate::lang::{AttrVal, Attrs, F32Bits, Onnx, OpNode, is_default_domain};
use crate::symbolic::SymDim;
use crate::tensors::{TensorOrigin, TensorTable};

/// What lowering needs to restore names and nodes after a graph went through the e-graph.
#[derive(Debug)]
pub struct Imported {
    /// The [`Onnx::Root`] e-class.
    pub root: Id,
    /// Every original value name and its e-class, in definition order.
    pub names: Vec<(String, Id)>,
    /// Each original node as an e-node (ids as at import), with its index in the graph.
    pub original_nodes: Vec<(Onnx, usize)>,
    /// Names that must exist exactly in the output graph: graph outputs (in order) and the
    /// outer values subgraphs read.
    pub pinned: Vec<(Id, String)>,
}

/// Facts of a declared type; unnamed dynamic dims become symbols no other dim equals.
pub fn facts_of_type(ty: &ValueType, value: &str) -> ValueFacts {
    let shape = ty.shape().map(|dims| {
        dims.iter()
            .enumerate()
            .map(|(i, d)| match d {
                Dim::Known(v) => SymDim::known(*v),
                Dim::Symbol(s) => SymDim::symbol(s),
                Dim::Unknown => SymDim::symbol(&format!("?{value}:{i}")),
            })
            .collect()
    });
    ValueFacts {
        dtype: ty.elem_type(),
        shape,
    }
}

/// Converts an attribute to its canonical e-node form; `None` for kinds that cannot be
/// compared (subgraphs, sparse tensors, type protos, function references).
fn canonical_attr(a: &Attribute, tensors: &mut TensorTable) -> Option<AttrVal> {
    if !a.ref_attr_name.is_empty() {
        return None;
    }
    Some(match &a.value {
        AttrValue::Int(v) => AttrVal::Int(*v),
        AttrValue::Float(v) => AttrVal::Float(F32Bits::new(*v)),
        AttrValue::String(s) => AttrVal::Str(Arc::from(s.as_slice())),
        AttrValue::Ints(v) => AttrVal::Ints(Arc::from(v.as_slice())),
        AttrValue::Floats(v) => AttrVal::Floats(v.iter().map(|f| F32Bits::new(*f)).collect()),
        AttrValue::Strings(v) => AttrVal::Strs(v.iter().map(|s| Arc::from(s.as_slice())).collect()),
        AttrValue::Tensor(t) => {
            AttrVal::Tensor(tensors.add(Arc::new(t.clone()), TensorOrigin::Attribute))
        }
        _ => return None,
    })
}

/// The tensor a `Constant` node produces, when it is a plain tensor value.
fn constant_value(node: &Node, name: &str) -> Option<Tensor> {
    let [attr] = node.attributes.as_slice() else {
        return None;
    };
    let t = match &attr.value {
        AttrValue::Tensor(t) if attr.name == "value" => t.renamed(name),
        AttrValue::Float(v) if attr.name == "value_float" => Tensor::from_f32(name, vec![], &[*v]),
        AttrValue::Floats(v) if attr.name == "value_floats" => {
            Tensor::from_f32(name, vec![v.len() as i64], v)
        }
        AttrValue::Int(v) if attr.name == "value_int" => Tensor::from_i64(name, vec![], &[*v]),
        AttrValue::Ints(v) if attr.name == "value_ints" => {
            Tensor::from_i64(name, vec![v.len() as i64], v)
        }
        _ => return None,
    };
    Some(t)
}

/// Builds the e-graph of the model's main graph, with the model's ONNX opset in the
/// analysis.
pub fn import(model: &Model) -> Result<(EGraph, Imported), RewriteError> {
    let (mut egraph, imported) = import_graph(&model.graph)?;
    egraph.analysis.onnx_opset = model.opset("");
    Ok((egraph, imported))
}

/// Builds the e-graph of `graph` (no opset known).
pub(crate) fn import_graph(graph: &Graph) -> Result<(EGraph, Imported), RewriteError> {
    let mut analysis = OnnxAnalysis::default();
    for input in &graph.inputs {
        let facts = input
            .ty
            .as_ref()
            .map(|t| facts_of_type(t, &input.name))
            .unwrap_or_default();
        analysis
            .inputs
            .insert(Symbol::from(input.name.as_str()), facts);
    }
    let mut egraph = EGraph::new(analysis);
    let declared: HashMap<&str, &ValueType> = graph
        .inputs
        .iter()
        .chain(&graph.outputs)
        .chain(&graph.value_info)
        .filter_map(|v| Some((v.name.as_str(), v.ty.as_ref()?)))
        .collect();
    let mut values: HashMap<&str, Id> = HashMap::new();
    let mut names: Vec<(String, Id)> = Vec::new();
    let mut original_nodes = Vec::new();
    let mut pinned = Vec::new();

    for input in &graph.inputs {
        let id = egraph.add(Onnx::Input(Symbol::from(input.name.as_str())));
        values.insert(&input.name, id);
        names.push((input.name.clone(), id));
    }
    for (name, tensor) in &graph.initializers {
        // An initializer that is also a graph input is only that input's default value.
        if values.contains_key(name.as_str()) {
            continue;
        }
        let t = egraph
            .analysis
            .tensors
            .add(Arc::clone(tensor), TensorOrigin::Initializer);
        let id = egraph.add(Onnx::Const(t));
        values.insert(name, id);
        names.push((name.clone(), id));
    }
    let absent = egraph.add(Onnx::Absent);

    for (index, node) in graph.nodes.iter().enumerate() {
        let lookup = |name: &str| -> Result<Id, RewriteError> {
            if name.is_empty() {
                return Ok(absent);
            }
            values
                .get(name)
                .copied()
                .ok_or_else(|| RewriteError::UndefinedValue {
                    node: node.label(),
                    value: name.to_string(),
                })
        };
        let mut children: Vec<Id> = node
            .inputs
            .iter()
            .map(|n| lookup(n))
            .collect::<Result<_, _>>()?;

        if node.is_onnx()
            && node.op_type == "Constant"
            && node.outputs.len() == 1
            && let Some(t) = constant_value(node, &node.outputs[0])
        {
            let tid = egraph
                .analysis
                .tensors
                .add(Arc::new(t), TensorOrigin::ConstantNode(index));
            let id = egraph.add(Onnx::Const(tid));
            values.insert(&node.outputs[0], id);
            names.push((node.outputs[0].clone(), id));
            continue;
        }

        let mut attrs: Vec<(Symbol, AttrVal)> = Vec::with_capacity(node.attributes.len());
        let mut comparable = node.overload.is_empty();
        for a in &node.attributes {
            match canonical_attr(a, &mut egraph.analysis.tensors) {
                Some(v) => attrs.push((Symbol::from(a.name.as_str()), v)),
                None => comparable = false,
            }
        }
        let outputs = u32::try_from(node.outputs.len()).unwrap_or(u32::MAX).max(1);
        let enode = if comparable {
            attrs.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
            let attrs: Attrs = Arc::from(attrs);
            let data = OpNode {
                op: Symbol::from(node.op_type.as_str()),
                domain: Symbol::from(if is_default_domain(&node.domain) {
                    ""
                } else {
                    node.domain.as_str()
                }),
                attrs: Some(attrs),
                outputs,
            };
            Onnx::Op(data, children)
        } else {
            // Subgraphs read outer values by name: they become extra children, and those
            // names must survive lowering exactly.
            for name in node.implicit_inputs() {
                let id = lookup(&name)?;
                children.push(id);
                pinned.push((id, name));
            }
            Onnx::Opaque(u32::try_from(index).unwrap_or(u32::MAX), children)
        };
        let id = egraph.add(enode.clone());
        original_nodes.push((enode, index));
        if node.outputs.len() <= 1 {
            if let Some(out) = node.outputs.first().filter(|o| !o.is_empty()) {
                seed(&mut egraph, id, &declared, out);
                values.insert(out, id);
                names.push((out.clone(), id));
            }
        } else {
            for (slot, out) in node.outputs.iter().enumerate() {
                if out.is_empty() {
                    continue;
                }
                let pid = egraph.add(Onnx::Proj(slot as u32, [id]));
                seed(&mut egraph, pid, &declared, out);
                values.insert(out, pid);
                names.push((out.clone(), pid));
            }
        }
    }

    let mut outputs = Vec::with_capacity(graph.outputs.len());
    for o in &graph.outputs {
        let id =
            values
                .get(o.name.as_str())
                .copied()
                .ok_or_else(|| RewriteError::UndefinedValue {
                    node: "graph output".into(),
                    value: o.name.clone(),
                })?;
        outputs.push(id);
    }
    let output_pins: Vec<(Id, String)> = graph
        .outputs
        .iter()
        .zip(&outputs)
        .map(|(o, &id)| (id, o.name.clone()))
        .collect();
    pinned.splice(0..0, output_pins);
    let root = egraph.add(Onnx::Root(outputs));
    egraph.rebuild();
    Ok((
        egraph,
        Imported {
            root,
            names,
            original_nodes,
            pinned,
        },
    ))
}

/// Fills facts inference could not derive from the graph's declared type of `value`.
fn seed(egraph: &mut EGraph, id: Id, declared: &HashMap<&str, &ValueType>, value: &str) {
    let Some(ty) = declared.get(value) else {
        return;
    };
    let facts = facts_of_type(ty, value);
    let data = &mut egraph[id].data;
    if data.dtype.is_none() {
        data.dtype = facts.dtype;
    }
    match (data.shape.as_mut(), facts.shape) {
        (None, declared) => data.shape = declared,
        // Inference kept the rank but not every size: a declared size fills each unknown.
        (Some(inferred), Some(declared)) if inferred.len() == declared.len() => {
            for (d, k) in inferred.iter_mut().zip(declared) {
                if d.is_unnamed() && !k.is_unnamed() {
                    *d = k;
                }
            }
        }
        _ => {}
    }
}
