//! Constant folding after lowering, for models whose input shapes are fixed
//! ([`crate::FixedShapes`]).
//!
//! Once every graph input has a static shape, the shape arithmetic exporters emit (`Shape`,
//! `Gather` of a dim, `Concat` of dims, `Range` of positions, `ConstantOfShape`, `Expand`
//! to a shape, ...) computes the same value on every run. This pass replaces each such node
//! by an initializer holding its value:
//! - `Shape` and `Size` of a value whose shape the analysis of the lowered graph knows
//!   statically (no dim symbolic or unknown);
//! - any other default-domain, deterministic node without subgraphs whose inputs are all
//!   constants (initializers, `Constant` nodes, values folded before), evaluated by the
//!   reference interpreter.
//!
//! Contracts: nothing downstream of a graph input's data is folded (such a node has a
//! non-constant input); a node is folded only when the analysis knows the static shape of
//! every output and the result is small ([`MAX_FOLDED_ELEMENTS`], or
//! [`MAX_FOLDED_INDEX_ELEMENTS`] for integer and boolean results), checked before anything
//! is evaluated, so folding never materializes a large tensor (a `ConstantOfShape` of
//! activation size stays a node); a result whose shape or type differs from the analysis'
//! is not used; graph outputs stay computed by their nodes; initializers nothing reads any
//! more are dropped. Afterwards the graph outputs declare the static dims the analysis knows.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use transfuse_interp::Interpreter;
use transfuse_ir::{DataType, Dim, Graph, Model, Node, Tensor, ValueInfo, ValueType};

use egg::Id;

use crate::analysis::{ClassData, EGraph};
use crate::error::RewriteError;
use crate::symbolic::SymDim;

/// The most elements a folded floating-point result may have.
pub const MAX_FOLDED_ELEMENTS: usize = 1024;

/// The most elements a folded integer or boolean result (shapes, indices, positions, masks
/// made from shapes) may have.
pub const MAX_FOLDED_INDEX_ELEMENTS: usize = 1 << 16;

/// The most bytes of constant inputs one folded node may read (a `Gather` of a constant
/// row from a weight reads the weight).
const MAX_FOLD_INPUT_BYTES: usize = 64 << 20;

/// Ops whose output is not a function of their inputs.
const NONDETERMINISTIC: &[&str] = &[
    "RandomNormal",
    "RandomNormalLike",
    "RandomUniform",
    "RandomUniformLike",
    "Multinomial",
    "Bernoulli",
];

/// Static type facts of a value: element type and shape, when known.
type Facts = (Option<DataType>, Option<Vec<i64>>);

/// [`Facts`] by value name.
pub(crate) type StaticFacts = HashMap<String, Facts>;

/// The facts of e-classes by the names they were written under.
pub(crate) fn class_facts<'a>(
    egraph: &EGraph,
    named: impl Iterator<Item = (Id, &'a String)>,
) -> StaticFacts {
    named
        .map(|(id, name)| (name.clone(), facts_of(&egraph[egraph.find(id)].data)))
        .collect()
}

fn facts_of(data: &ClassData) -> Facts {
    let shape = data
        .shape
        .as_ref()
        .and_then(|s| s.iter().map(SymDim::as_known).collect::<Option<Vec<i64>>>());
    (data.dtype, shape)
}

/// Most rounds of [`fold_constants`]: a round folds every node whose output shape the
/// analysis knows; folding makes more shapes known (a `Concat` sized from a folded `Resize`).
const MAX_ROUNDS: usize = 8;

/// Folds every foldable node of `model`'s main graph into an initializer (see the module
/// docs), in rounds until nothing more folds, then declares the graph outputs' static dims;
/// returns how many nodes were folded. `saturated` holds the facts of the e-graph the model
/// was extracted from (which knows the shapes of fused ops' outputs through the original
/// nodes in their classes); each round adds what the analysis of the graph as it is knows.
pub(crate) fn fold_constants(
    model: &mut Model,
    saturated: &StaticFacts,
) -> Result<usize, RewriteError> {
    let mut total = 0;
    let mut facts = static_facts(model, saturated)?;
    for _ in 0..MAX_ROUNDS {
        let folded = fold_round(model, &facts)?;
        facts = static_facts(model, saturated)?;
        if folded == 0 {
            break;
        }
        total += folded;
    }
    declare_output_dims(&mut model.graph, &facts);
    Ok(total)
}

/// Writes the static size the analysis knows into every graph output dim declared symbolic
/// or unknown (exporters name output dims after the node that made them, `Addoutput_0_dim_0`,
/// which the fixed input dims do not reach).
fn declare_output_dims(graph: &mut Graph, facts: &StaticFacts) {
    for output in &mut graph.outputs {
        let Some((_, Some(known))) = facts.get(&output.name) else {
            continue;
        };
        let Some(ValueType::Tensor {
            shape: Some(dims), ..
        }) = output.ty.as_mut()
        else {
            continue;
        };
        if dims.len() != known.len() {
            continue;
        }
        for (dim, &size) in dims.iter_mut().zip(known) {
            if !matches!(dim, Dim::Known(_)) {
                *dim = Dim::Known(size);
            }
        }
    }
}

/// One round of [`fold_constants`], with the facts of the graph as it is.
fn fold_round(model: &mut Model, facts: &StaticFacts) -> Result<usize, RewriteError> {
    let graph = &model.graph;
    let graph_inputs: HashSet<&str> = graph.inputs.iter().map(|v| v.name.as_str()).collect();
    let outputs: HashSet<&str> = graph.outputs.iter().map(|v| v.name.as_str()).collect();
    let mut constants: HashMap<String, Arc<Tensor>> = graph
        .initializers
        .iter()
        .filter(|(name, _)| !graph_inputs.contains(name.as_str()))
        .map(|(name, t)| (name.clone(), Arc::clone(t)))
        .collect();
    let mut kept = Vec::with_capacity(graph.nodes.len());
    let mut folded: Vec<String> = Vec::new();
    for node in &graph.nodes {
        let fold = Fold {
            model,
            constants: &constants,
            facts,
        };
        match fold.node(node, &outputs) {
            Some(values) => {
                for t in values {
                    folded.push(t.name.clone());
                    constants.insert(t.name.clone(), Arc::new(t));
                }
            }
            None => kept.push(node.clone()),
        }
    }
    let count = graph.nodes.len() - kept.len();
    if count == 0 {
        return Ok(0);
    }
    let graph = &mut model.graph;
    graph.nodes = kept;
    for name in &folded {
        if let Some(t) = constants.get(name) {
            graph.initializers.insert(name.clone(), Arc::clone(t));
        }
    }
    let folded: HashSet<&String> = folded.iter().collect();
    graph.value_info.retain(|v| !folded.contains(&v.name));
    drop_unread_initializers(graph);
    graph.check()?;
    Ok(count)
}

/// Element type and static shape of every value of the model, from the analysis of the
/// model as it is, completed by `saturated` where that analysis lacks a fact.
fn static_facts(model: &Model, saturated: &StaticFacts) -> Result<StaticFacts, RewriteError> {
    let (egraph, imported) = crate::import::import(model)?;
    let mut facts = class_facts(&egraph, imported.names.iter().map(|(n, id)| (*id, n)));
    for (name, (dtype, shape)) in saturated {
        let entry = facts.entry(name.clone()).or_insert((None, None));
        if entry.0.is_none() {
            entry.0 = *dtype;
        }
        if entry.1.is_none() {
            entry.1.clone_from(shape);
        }
    }
    Ok(facts)
}

/// Removes the initializers no node (nor a subgraph) reads and no graph output is.
fn drop_unread_initializers(graph: &mut Graph) {
    let mut read: HashSet<String> = graph.outputs.iter().map(|v| v.name.clone()).collect();
    read.extend(graph.inputs.iter().map(|v| v.name.clone()));
    for node in &graph.nodes {
        read.extend(node.inputs.iter().cloned());
        read.extend(node.implicit_inputs());
    }
    graph.initializers.retain(|name, _| read.contains(name));
}

/// What folding one node reads.
struct Fold<'a> {
    model: &'a Model,
    constants: &'a HashMap<String, Arc<Tensor>>,
    facts: &'a StaticFacts,
}

impl Fold<'_> {
    /// The values of `node`'s outputs when it can be folded.
    fn node(&self, node: &Node, pinned: &HashSet<&str>) -> Option<Vec<Tensor>> {
        let deterministic = !NONDETERMINISTIC.contains(&node.op_type.as_str());
        if !node.is_onnx() || !deterministic || node.has_subgraph() {
            return None;
        }
        let outputs: Vec<&String> = node.outputs.iter().filter(|o| !o.is_empty()).collect();
        if outputs.is_empty() || outputs.iter().any(|o| pinned.contains(o.as_str())) {
            return None;
        }
        for o in &outputs {
            let (dtype, shape) = self.facts.get(o.as_str())?;
            let count = element_count(shape.as_ref()?)?;
            if count > max_elements(*dtype) {
                return None;
            }
        }
        match node.op_type.as_str() {
            "Shape" | "Size" => self.shape_of(node),
            _ => self.evaluate(node, &outputs),
        }
    }

    /// `Shape` (with its `start` and `end`) or `Size` of a value of known static shape.
    fn shape_of(&self, node: &Node) -> Option<Vec<Tensor>> {
        let (input, [output]) = (node.inputs.first()?, node.outputs.as_slice()) else {
            return None;
        };
        let dims = match self.constants.get(input) {
            Some(t) => t.dims.clone(),
            None => self.facts.get(input)?.1.clone()?,
        };
        if node.op_type == "Size" {
            let count = dims.iter().try_fold(1i64, |n, &d| n.checked_mul(d))?;
            return Some(vec![Tensor::from_i64(output, vec![], &[count])]);
        }
        let rank = i64::try_from(dims.len()).ok()?;
        let clamp = |v: i64| if v < 0 { v + rank } else { v }.clamp(0, rank);
        let start = clamp(node.attr_int("start").unwrap_or(0));
        let end = clamp(node.attr_int("end").unwrap_or(rank)).max(start);
        let kept = dims.get(usize::try_from(start).ok()?..usize::try_from(end).ok()?)?;
        Some(vec![Tensor::from_i64(
            output,
            vec![i64::try_from(kept.len()).ok()?],
            kept,
        )])
    }

    /// Runs `node` alone in the reference interpreter, when all its inputs are constants.
    fn evaluate(&self, node: &Node, outputs: &[&String]) -> Option<Vec<Tensor>> {
        let mut graph = Graph {
            name: "fold".to_string(),
            ..Graph::default()
        };
        let mut bytes = 0usize;
        for input in node.inputs.iter().filter(|i| !i.is_empty()) {
            let t = self.constants.get(input)?;
            if t.is_empty_data() && t.numel().ok()? > 0 {
                // A skeleton's weight without data: its value is unknown.
                return None;
            }
            bytes = bytes.checked_add(t.byte_len())?;
            graph.initializers.insert(input.clone(), Arc::clone(t));
        }
        if bytes > MAX_FOLD_INPUT_BYTES {
            return None;
        }
        graph.nodes.push(node.clone());
        graph.outputs = outputs
            .iter()
            .map(|o| ValueInfo {
                name: (*o).clone(),
                ty: None,
                doc_string: String::new(),
                metadata_props: Vec::new(),
            })
            .collect();
        let interpreter = Interpreter::new(&self.model.clone_with_graph(graph)).ok()?;
        let mut values = interpreter.run(&HashMap::new()).ok()?;
        outputs
            .iter()
            .map(|o| {
                let value = values.remove(o.as_str())?;
                let t = value.to_tensor(o.as_str());
                let (dtype, shape) = self.facts.get(o.as_str())?;
                let agrees = dtype.is_none_or(|d| d == t.dtype) && shape.as_ref() == Some(&t.dims);
                agrees.then_some(t)
            })
            .collect()
    }
}

/// The number of elements of a static shape, `None` on overflow or a negative dim.
fn element_count(dims: &[i64]) -> Option<usize> {
    dims.iter()
        .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?))
}

/// The size cap of a folded result of element type `dtype`.
fn max_elements(dtype: Option<DataType>) -> usize {
    match dtype {
        Some(
            DataType::Int64
            | DataType::Int32
            | DataType::Int16
            | DataType::Int8
            | DataType::Uint8
            | DataType::Bool,
        ) => MAX_FOLDED_INDEX_ELEMENTS,
        _ => MAX_FOLDED_ELEMENTS,
    }
}
