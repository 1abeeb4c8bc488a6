//! Helpers shared by the op tests: build one-node (or small) models with the IR and run
//! them through the interpreter.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;

use ndarray::{ArrayD, IxDyn};
use transfuse_interp::{InterpError, Interpreter, Value};
use transfuse_ir::{AttrValue, Graph, Model, Node, OpsetImport, ValueInfo};

/// A small model under construction.
pub struct ModelBuilder {
    graph: Graph,
    opsets: Vec<OpsetImport>,
    inputs: HashMap<String, Value>,
}

impl ModelBuilder {
    /// An empty model importing the ONNX domain at `opset` and `com.microsoft` at 1.
    pub fn new(opset: i64) -> ModelBuilder {
        ModelBuilder {
            graph: Graph::default(),
            opsets: vec![
                OpsetImport {
                    domain: String::new(),
                    version: opset,
                },
                OpsetImport {
                    domain: "com.microsoft".into(),
                    version: 1,
                },
            ],
            inputs: HashMap::new(),
        }
    }

    /// Adds a graph input fed with `value` at run time.
    pub fn input(mut self, name: &str, value: Value) -> ModelBuilder {
        self.graph
            .inputs
            .push(ValueInfo::tensor(name, value.dtype(), None));
        self.inputs.insert(name.to_string(), value);
        self
    }

    /// Adds an initializer.
    pub fn initializer(mut self, name: &str, value: &Value) -> ModelBuilder {
        self.graph.add_initializer(value.to_tensor(name));
        self
    }

    /// Adds a node.
    pub fn node(mut self, node: Node) -> ModelBuilder {
        self.graph.nodes.push(node);
        self
    }

    /// Declares graph outputs.
    pub fn outputs(mut self, names: &[&str]) -> ModelBuilder {
        for n in names {
            self.graph.outputs.push(ValueInfo {
                name: n.to_string(),
                ty: None,
                doc_string: String::new(),
                metadata_props: Vec::new(),
            });
        }
        self
    }

    /// The model.
    pub fn model(&self) -> Model {
        Model {
            ir_version: 8,
            opset_imports: self.opsets.clone(),
            graph: self.graph.clone(),
            ..Model::default()
        }
    }

    /// Prepares and runs the model; the outputs in declared order.
    pub fn run(&self) -> Result<Vec<Value>, InterpError> {
        let model = self.model();
        let interp = Interpreter::new(&model)?;
        let mut out = interp.run(&self.inputs)?;
        Ok(model
            .graph
            .outputs
            .iter()
            .map(|o| out.remove(&o.name).unwrap())
            .collect())
    }
}

/// A node builder: `op("Add", &["a", "b"], &["y"])`.
pub fn op(op_type: &str, inputs: &[&str], outputs: &[&str]) -> Node {
    Node::new(
        op_type,
        "",
        inputs.iter().map(|s| s.to_string()).collect(),
        outputs.iter().map(|s| s.to_string()).collect(),
    )
}

/// A `com.microsoft` node builder.
pub fn ms_op(op_type: &str, inputs: &[&str], outputs: &[&str]) -> Node {
    Node::new(
        op_type,
        "com.microsoft",
        inputs.iter().map(|s| s.to_string()).collect(),
        outputs.iter().map(|s| s.to_string()).collect(),
    )
}

/// Integer attribute.
pub fn int(v: i64) -> AttrValue {
    AttrValue::Int(v)
}
/// Float attribute.
pub fn float(v: f32) -> AttrValue {
    AttrValue::Float(v)
}
/// Integer-list attribute.
pub fn ints(v: &[i64]) -> AttrValue {
    AttrValue::Ints(v.to_vec())
}
/// Float-list attribute.
pub fn floats(v: &[f32]) -> AttrValue {
    AttrValue::Floats(v.to_vec())
}
/// String attribute.
pub fn string(v: &str) -> AttrValue {
    AttrValue::String(v.as_bytes().to_vec())
}

/// An f32 value.
pub fn f32s(shape: &[usize], data: &[f32]) -> Value {
    Value::F32(ArrayD::from_shape_vec(IxDyn(shape), data.to_vec()).unwrap())
}
/// An f64 value.
pub fn f64s(shape: &[usize], data: &[f64]) -> Value {
    Value::F64(ArrayD::from_shape_vec(IxDyn(shape), data.to_vec()).unwrap())
}
/// An i64 value.
pub fn i64s(shape: &[usize], data: &[i64]) -> Value {
    Value::I64(ArrayD::from_shape_vec(IxDyn(shape), data.to_vec()).unwrap())
}
/// An i32 value.
pub fn i32s(shape: &[usize], data: &[i32]) -> Value {
    Value::I32(ArrayD::from_shape_vec(IxDyn(shape), data.to_vec()).unwrap())
}
/// A bool value.
pub fn bools(shape: &[usize], data: &[bool]) -> Value {
    Value::Bool(ArrayD::from_shape_vec(IxDyn(shape), data.to_vec()).unwrap())
}

/// Runs a single node whose inputs are graph inputs `x0, x1, ...` (an empty slot in
/// `inputs` is an omitted optional input) and returns its `n_out` outputs.
pub fn run_op(
    opset: i64,
    node: Node,
    inputs: Vec<Option<Value>>,
    n_out: usize,
) -> Result<Vec<Value>, InterpError> {
    let mut b = ModelBuilder::new(opset);
    let mut names = Vec::new();
    for (i, v) in inputs.into_iter().enumerate() {
        match v {
            Some(v) => {
                let name = format!("x{i}");
                b = b.input(&name, v);
                names.push(name);
            }
            None => names.push(String::new()),
        }
    }
    let outs: Vec<String> = (0..n_out).map(|i| format!("y{i}")).collect();
    let mut node = node;
    node.inputs = names;
    node.outputs = outs.clone();
    let out_refs: Vec<&str> = outs.iter().map(String::as_str).collect();
    b.node(node).outputs(&out_refs).run()
}

/// [`run_op`] with every input present and one output.
pub fn run1(opset: i64, node: Node, inputs: Vec<Value>) -> Value {
    run_op(opset, node, inputs.into_iter().map(Some).collect(), 1)
        .unwrap()
        .remove(0)
}

/// Max absolute difference; panics on shape mismatch. NaN only matches NaN.
pub fn max_abs_diff(a: &Value, b: &Value) -> f64 {
    assert_eq!(a.shape(), b.shape(), "shapes differ");
    a.to_f64_vec()
        .iter()
        .zip(b.to_f64_vec())
        .map(|(x, y)| {
            if x.is_nan() && y.is_nan() {
                0.0
            } else if x.is_nan() || y.is_nan() {
                f64::INFINITY
            } else {
                (x - y).abs()
            }
        })
        .fold(0.0, f64::max)
}

/// Asserts `a` and `b` have the same shape and agree within `tol`.
pub fn assert_close(a: &Value, b: &Value, tol: f64) {
    let d = max_abs_diff(a, b);
    assert!(
        d <= tol,
        "values differ by {d:e} (tolerance {tol:e})\n got: {:?}\nwant: {:?}",
        a.to_f64_vec(),
        b.to_f64_vec()
    );
}

/// Asserts exact equality of shape, type and elements.
pub fn assert_exact(a: &Value, b: &Value) {
    assert_eq!(a.dtype(), b.dtype(), "dtypes differ");
    assert_eq!(a.shape(), b.shape(), "shapes differ");
    assert_eq!(a.to_f64_vec(), b.to_f64_vec());
}

/// Deterministic pseudo-random floats in [-1, 1).
pub fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}
