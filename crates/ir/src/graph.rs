//! The graph: nodes, attributes, value infos and initializers.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use indexmap::IndexMap;
use transfuse_proto as pb;

use crate::{DataType, IrError, Result, Tensor};

/// An attribute value. Subgraphs, sparse tensors and type protos are kept as their
/// protobuf messages, untouched, so they round-trip exactly.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)]
// A node has a handful of attributes and tensor attributes are rare (Constant); keeping
// `Tensor` unboxed keeps pattern matching on attributes plain.
#[allow(clippy::large_enum_variant)]
pub enum AttrValue {
    Float(f32),
    Int(i64),
    String(Vec<u8>),
    Tensor(Tensor),
    Graph(Box<pb::GraphProto>),
    SparseTensor(Box<pb::SparseTensorProto>),
    TypeProto(Box<pb::TypeProto>),
    Floats(Vec<f32>),
    Ints(Vec<i64>),
    Strings(Vec<Vec<u8>>),
    Tensors(Vec<Tensor>),
    Graphs(Vec<pb::GraphProto>),
    SparseTensors(Vec<pb::SparseTensorProto>),
    TypeProtos(Vec<pb::TypeProto>),
    /// A reference to a function attribute (`ref_attr_name`) carries no value; also used for
    /// an attribute with no value field set.
    Undefined,
}

/// A named attribute of a node.
#[derive(Clone, Debug, PartialEq)]
pub struct Attribute {
    /// Attribute name.
    pub name: String,
    /// Its value.
    pub value: AttrValue,
    /// Documentation string.
    pub doc_string: String,
    /// Inside functions: the parent function's attribute this one refers to.
    pub ref_attr_name: String,
}

impl Attribute {
    /// A plain attribute.
    pub fn new(name: impl Into<String>, value: AttrValue) -> Attribute {
        Attribute {
            name: name.into(),
            value,
            doc_string: String::new(),
            ref_attr_name: String::new(),
        }
    }
}

/// One operator application.
///
/// Inputs and outputs are value names; an omitted optional input or output is `""`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Node {
    /// Node name (may be empty).
    pub name: String,
    /// Operator type, for example `MatMul`.
    pub op_type: String,
    /// Operator domain; `""` is the default ONNX domain (`ai.onnx`).
    pub domain: String,
    /// Function overload identifier (rare).
    pub overload: String,
    /// Input value names.
    pub inputs: Vec<String>,
    /// Output value names.
    pub outputs: Vec<String>,
    /// Attributes, in file order.
    pub attributes: Vec<Attribute>,
    /// Documentation string.
    pub doc_string: String,
    /// `metadata_props` (exporters put source locations here), in order.
    pub metadata_props: Vec<(String, String)>,
    /// Multi-device configurations, kept verbatim.
    pub device_configurations: Vec<pb::NodeDeviceConfigurationProto>,
}

impl Node {
    /// A node with the given op type, domain, inputs and outputs and no attributes.
    pub fn new(
        op_type: impl Into<String>,
        domain: impl Into<String>,
        inputs: Vec<String>,
        outputs: Vec<String>,
    ) -> Node {
        Node {
            op_type: op_type.into(),
            domain: domain.into(),
            inputs,
            outputs,
            ..Node::default()
        }
    }

    /// Adds an attribute (builder style).
    pub fn with_attr(mut self, name: impl Into<String>, value: AttrValue) -> Node {
        self.attributes.push(Attribute::new(name, value));
        self
    }

    /// The attribute called `name`.
    pub fn attr(&self, name: &str) -> Option<&AttrValue> {
        self.attributes
            .iter()
            .find(|a| a.name == name)
            .map(|a| &a.value)
    }

    /// An integer attribute.
    pub fn attr_int(&self, name: &str) -> Option<i64> {
        match self.attr(name)? {
            AttrValue::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// A float attribute.
    pub fn attr_float(&self, name: &str) -> Option<f32> {
        match self.attr(name)? {
            AttrValue::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// An integer-list attribute.
    pub fn attr_ints(&self, name: &str) -> Option<&[i64]> {
        match self.attr(name)? {
            AttrValue::Ints(v) => Some(v),
            _ => None,
        }
    }

    /// A float-list attribute.
    pub fn attr_floats(&self, name: &str) -> Option<&[f32]> {
        match self.attr(name)? {
            AttrValue::Floats(v) => Some(v),
            _ => None,
        }
    }

    /// A string attribute (lossy UTF-8).
    pub fn attr_string(&self, name: &str) -> Option<String> {
        match self.attr(name)? {
            AttrValue::String(s) => Some(String::from_utf8_lossy(s).into_owned()),
            _ => None,
        }
    }

    /// A tensor attribute.
    pub fn attr_tensor(&self, name: &str) -> Option<&Tensor> {
        match self.attr(name)? {
            AttrValue::Tensor(t) => Some(t),
            _ => None,
        }
    }

    /// True when the op is in the default ONNX domain.
    pub fn is_onnx(&self) -> bool {
        self.domain.is_empty() || self.domain == "ai.onnx"
    }

    /// True when an attribute holds a graph (`If`, `Loop`, `Scan` bodies and the like).
    ///
    /// ```
    /// use transfuse_ir::{AttrValue, Node};
    /// let add = Node::new("Add", "", vec!["a".into(), "b".into()], vec!["c".into()]);
    /// assert!(!add.has_subgraph());
    /// let branch = AttrValue::Graph(Box::default());
    /// let cond = Node::new("If", "", vec!["c".into()], vec!["y".into()]).with_attr("then_branch", branch);
    /// assert!(cond.has_subgraph());
    /// ```
    pub fn has_subgraph(&self) -> bool {
        self.attributes
            .iter()
            .any(|a| matches!(a.value, AttrValue::Graph(_) | AttrValue::Graphs(_)))
    }

    /// A label for messages: the name, or `<op_type>#<outputs[0]>` for unnamed nodes.
    pub fn label(&self) -> String {
        if !self.name.is_empty() {
            self.name.clone()
        } else {
            format!(
                "{}->{}",
                self.op_type,
                self.outputs.first().map_or("?", String::as_str)
            )
        }
    }

    /// The names of outer-scope values that this node's subgraph attributes read
    /// (values a subgraph uses but does not define). Empty for nodes without subgraphs.
    pub fn implicit_inputs(&self) -> Vec<String> {
        let mut out = Vec::new();
        for a in &self.attributes {
            match &a.value {
                AttrValue::Graph(g) => out.extend(outer_scope_reads(g)),
                AttrValue::Graphs(gs) => gs.iter().for_each(|g| out.extend(outer_scope_reads(g))),
                _ => {}
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// Names a (proto) subgraph reads from its enclosing scopes.
fn outer_scope_reads(g: &pb::GraphProto) -> Vec<String> {
    let mut defined: HashSet<&str> = HashSet::new();
    defined.extend(g.input.iter().filter_map(|v| v.name.as_deref()));
    defined.extend(g.initializer.iter().filter_map(|t| t.name.as_deref()));
    for n in &g.node {
        defined.extend(n.output.iter().map(String::as_str));
    }
    let mut reads = Vec::new();
    let mut consider = |name: &str| {
        if !name.is_empty() && !defined.contains(name) {
            reads.push(name.to_string());
        }
    };
    for n in &g.node {
        n.input.iter().for_each(|i| consider(i));
        for a in &n.attribute {
            for sub in a.g.iter().chain(a.graphs.iter()) {
                outer_scope_reads(sub).iter().for_each(|i| consider(i));
            }
        }
    }
    g.output
        .iter()
        .filter_map(|v| v.name.as_deref())
        .for_each(&mut consider);
    reads
}

/// One dimension of a tensor shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A known size.
    Known(i64),
    /// A named symbolic size (`batch`, `sequence`).
    Symbol(String),
    /// Unknown and unnamed.
    Unknown,
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Known(v) => write!(f, "{v}"),
            Dim::Symbol(s) => f.write_str(s),
            Dim::Unknown => f.write_str("?"),
        }
    }
}

/// The type of a value.
#[derive(Clone, Debug, PartialEq)]
pub enum ValueType {
    /// A dense tensor: element type and optional shape.
    Tensor {
        /// Element type.
        elem_type: DataType,
        /// The shape if known (each dim known, symbolic or unknown), `None` for unknown rank.
        shape: Option<Vec<Dim>>,
        /// Per-dim denotations, parallel to `shape` (kept for round trips; usually empty).
        dim_denotations: Vec<String>,
        /// `TypeProto.denotation`.
        denotation: String,
    },
    /// Sequences, maps, optionals, sparse and opaque types, kept verbatim.
    Other(pb::TypeProto),
}

impl ValueType {
    /// A tensor type.
    pub fn tensor(elem_type: DataType, shape: Option<Vec<Dim>>) -> ValueType {
        ValueType::Tensor {
            elem_type,
            shape,
            dim_denotations: Vec::new(),
            denotation: String::new(),
        }
    }

    /// The element type of a tensor type.
    pub fn elem_type(&self) -> Option<DataType> {
        match self {
            ValueType::Tensor { elem_type, .. } => Some(*elem_type),
            ValueType::Other(_) => None,
        }
    }

    /// The shape of a tensor type, when its rank is known.
    pub fn shape(&self) -> Option<&[Dim]> {
        match self {
            ValueType::Tensor { shape, .. } => shape.as_deref(),
            ValueType::Other(_) => None,
        }
    }
}

/// A named, optionally typed value (graph input, output or `value_info` entry).
#[derive(Clone, Debug, PartialEq)]
pub struct ValueInfo {
    /// Value name.
    pub name: String,
    /// Its type; `None` when the model gives none.
    pub ty: Option<ValueType>,
    /// Documentation string.
    pub doc_string: String,
    /// `metadata_props`, in order.
    pub metadata_props: Vec<(String, String)>,
}

impl ValueInfo {
    /// A tensor value info.
    pub fn tensor(
        name: impl Into<String>,
        elem_type: DataType,
        shape: Option<Vec<Dim>>,
    ) -> ValueInfo {
        ValueInfo {
            name: name.into(),
            ty: Some(ValueType::tensor(elem_type, shape)),
            doc_string: String::new(),
            metadata_props: Vec::new(),
        }
    }

    /// Element type, if it is a typed tensor.
    pub fn elem_type(&self) -> Option<DataType> {
        self.ty.as_ref().and_then(ValueType::elem_type)
    }

    /// Shape, if known.
    pub fn shape(&self) -> Option<&[Dim]> {
        self.ty.as_ref().and_then(ValueType::shape)
    }
}

/// A computation graph.
///
/// Invariants after [`Graph::check`] (which loading runs): value names are defined once;
/// every node input is produced by an earlier node, an initializer or a graph input;
/// `nodes` is in topological order.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Graph {
    /// Graph name.
    pub name: String,
    /// Documentation string.
    pub doc_string: String,
    /// Graph inputs, in order.
    pub inputs: Vec<ValueInfo>,
    /// Graph outputs, in order.
    pub outputs: Vec<ValueInfo>,
    /// Type annotations of intermediate values.
    pub value_info: Vec<ValueInfo>,
    /// Nodes in topological order.
    pub nodes: Vec<Node>,
    /// Initializers by name, in file order. Shared (`Arc`) so copies of a graph and
    /// rewritten graphs never copy weights.
    pub initializers: IndexMap<String, Arc<Tensor>>,
    /// Sparse initializers, kept verbatim.
    pub sparse_initializers: Vec<pb::SparseTensorProto>,
    /// Quantization annotations, kept verbatim.
    pub quantization_annotation: Vec<pb::TensorAnnotation>,
    /// `metadata_props`, in order.
    pub metadata_props: Vec<(String, String)>,
}

impl Graph {
    /// A copy of the graph without its nodes, initializers and sparse initializers (the
    /// large parts), for writing a new graph with the same signature and metadata.
    pub fn clone_without_nodes(&self) -> Graph {
        Graph {
            name: self.name.clone(),
            doc_string: self.doc_string.clone(),
            inputs: self.inputs.clone(),
            outputs: self.outputs.clone(),
            value_info: self.value_info.clone(),
            nodes: Vec::new(),
            initializers: IndexMap::new(),
            sparse_initializers: Vec::new(),
            quantization_annotation: self.quantization_annotation.clone(),
            metadata_props: self.metadata_props.clone(),
        }
    }

    /// The initializer called `name`.
    pub fn initializer(&self, name: &str) -> Option<&Arc<Tensor>> {
        self.initializers.get(name)
    }

    /// Adds (or replaces) an initializer.
    pub fn add_initializer(&mut self, tensor: Tensor) {
        self.initializers
            .insert(tensor.name.clone(), Arc::new(tensor));
    }

    /// Declared type of a value: graph input, output or `value_info`, else the initializer's.
    pub fn value_type(&self, name: &str) -> Option<ValueType> {
        let declared = self
            .inputs
            .iter()
            .chain(&self.outputs)
            .chain(&self.value_info)
            .find(|v| v.name == name);
        if let Some(ty) = declared.and_then(|v| v.ty.clone()) {
            return Some(ty);
        }
        self.initializer(name).map(|t| {
            ValueType::tensor(
                t.dtype,
                Some(t.dims.iter().map(|&d| Dim::Known(d)).collect()),
            )
        })
    }

    /// For each value: the indices of the nodes that read it (once per node).
    pub fn consumers(&self) -> HashMap<&str, Vec<usize>> {
        let mut map: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let mut seen = HashSet::new();
            for inp in n.inputs.iter().filter(|s| !s.is_empty()) {
                if seen.insert(inp.as_str()) {
                    map.entry(inp.as_str()).or_default().push(i);
                }
            }
        }
        map
    }

    /// Checks the graph invariants and sorts the nodes topologically (stable: nodes already
    /// in order keep their order). Errors on duplicate value names, undefined inputs or outputs
    /// and cycles.
    pub fn check(&mut self) -> Result<()> {
        self.check_in_scope(&HashSet::new())
    }

    /// [`Graph::check`] for a subgraph that may read `outer` names from enclosing scopes.
    pub fn check_in_scope(&mut self, outer: &HashSet<String>) -> Result<()> {
        // Where each value comes from, for duplicate detection and dependency edges.
        let mut defined: HashMap<&str, String> = HashMap::new();
        let input_names: HashSet<&str> = self.inputs.iter().map(|v| v.name.as_str()).collect();
        for v in &self.inputs {
            if let Some(first) = defined.insert(&v.name, "a graph input".into()) {
                return Err(dup(&v.name, first, "a graph input"));
            }
        }
        for name in self.initializers.keys() {
            // An initializer may also be listed as a graph input (its default value).
            if input_names.contains(name.as_str()) {
                continue;
            }
            if let Some(first) = defined.insert(name, "an initializer".into()) {
                return Err(dup(name, first, "an initializer"));
            }
        }
        let mut producer: HashMap<&str, usize> = HashMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            for o in n.outputs.iter().filter(|o| !o.is_empty()) {
                let by = format!("node '{}'", n.label());
                if let Some(first) = defined.insert(o, by.clone()) {
                    return Err(dup(o, first, &by));
                }
                producer.insert(o, i);
            }
        }
        // Dependencies (explicit and subgraph-implicit inputs).
        let count = self.nodes.len();
        let mut indegree = vec![0usize; count];
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); count];
        for (i, n) in self.nodes.iter().enumerate() {
            let implicit = n.implicit_inputs();
            for inp in n
                .inputs
                .iter()
                .filter(|s| !s.is_empty())
                .chain(implicit.iter())
            {
                if let Some(&p) = producer.get(inp.as_str()) {
                    indegree[i] += 1;
                    dependents[p].push(i);
                } else if !defined.contains_key(inp.as_str()) && !outer.contains(inp) {
                    return Err(IrError::UndefinedValue {
                        node: n.label(),
                        op_type: n.op_type.clone(),
                        value: inp.clone(),
                    });
                }
            }
        }
        for o in &self.outputs {
            if !defined.contains_key(o.name.as_str()) && !outer.contains(&o.name) {
                return Err(IrError::UndefinedOutput(o.name.clone()));
            }
        }
        // Kahn's algorithm, always taking the lowest ready index: stable for sorted graphs.
        let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<usize>> = (0..count)
            .filter(|&i| indegree[i] == 0)
            .map(std::cmp::Reverse)
            .collect();
        let mut order = Vec::with_capacity(count);
        while let Some(std::cmp::Reverse(i)) = ready.pop() {
            order.push(i);
            for &d in &dependents[i] {
                indegree[d] -= 1;
                if indegree[d] == 0 {
                    ready.push(std::cmp::Reverse(d));
                }
            }
        }
        if order.len() < count {
            let stuck = (0..count).find(|&i| indegree[i] > 0).unwrap_or(0);
            let n = &self.nodes[stuck];
            return Err(IrError::Cycle {
                node: n.label(),
                op_type: n.op_type.clone(),
            });
        }
        if order.iter().enumerate().any(|(pos, &i)| pos != i) {
            let mut old: Vec<Option<Node>> = std::mem::take(&mut self.nodes)
                .into_iter()
                .map(Some)
                .collect();
            self.nodes = order.into_iter().filter_map(|i| old[i].take()).collect();
        }
        Ok(())
    }

    /// Count of nodes per `op_type` (domain-qualified for non-ONNX domains), sorted by name.
    pub fn op_histogram(&self) -> std::collections::BTreeMap<String, usize> {
        let mut h = std::collections::BTreeMap::new();
        for n in &self.nodes {
            let key = if n.is_onnx() {
                n.op_type.clone()
            } else {
                format!("{}.{}", n.domain, n.op_type)
            };
            *h.entry(key).or_insert(0) += 1;
        }
        h
    }
}

fn dup(name: &str, first: String, second: &str) -> IrError {
    IrError::DuplicateValue {
        name: name.to_string(),
        first,
        second: second.to_string(),
    }
}
