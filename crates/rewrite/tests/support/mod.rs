//! Shared test helpers: a small graph builder for synthetic models, optimization with a
//! fusion list, and parity through the reference interpreter.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

pub mod python_checks;

use std::collections::HashMap;

use transfuse_interp::{Interpreter, Value};
use transfuse_ir::{AttrValue, DataType, Dim, Graph, Model, Node, OpsetImport, Tensor, ValueInfo};
use transfuse_rewrite::{FusionSet, OptimizeOptions, Report, optimize};

/// Builds a graph node by node; values get generated names.
pub struct Builder {
    pub graph: Graph,
    count: usize,
    opset: i64,
}

/// `"batch"` is a symbol, `"8"` a known dim.
pub fn dims(spec: &[&str]) -> Vec<Dim> {
    spec.iter()
        .map(|d| {
            d.parse::<i64>()
                .map_or_else(|_| Dim::Symbol((*d).to_string()), Dim::Known)
        })
        .collect()
}

impl Builder {
    pub fn new(opset: i64) -> Builder {
        Builder {
            graph: Graph {
                name: "test".into(),
                ..Graph::default()
            },
            count: 0,
            opset,
        }
    }

    pub fn input(&mut self, name: &str, shape: &[&str]) -> String {
        self.graph
            .inputs
            .push(ValueInfo::tensor(name, DataType::Float, Some(dims(shape))));
        name.to_string()
    }

    fn fresh(&mut self, stem: &str) -> String {
        self.count += 1;
        format!("{stem}_{}", self.count)
    }

    /// An f32 initializer.
    pub fn init(&mut self, dims: &[i64], values: &[f32]) -> String {
        let name = self.fresh("w");
        self.graph
            .add_initializer(Tensor::from_f32(&name, dims.to_vec(), values));
        name
    }

    /// An f32 scalar initializer.
    pub fn scalar(&mut self, v: f32) -> String {
        self.init(&[], &[v])
    }

    /// A deterministic pseudo-random f32 initializer.
    pub fn random(&mut self, dims: &[i64], seed: u64) -> String {
        let n: i64 = dims.iter().product();
        let values: Vec<f32> = (0..n).map(|i| pseudo_random(seed, i as u64)).collect();
        self.init(dims, &values)
    }

    pub fn op(&mut self, op: &str, inputs: &[&str]) -> String {
        self.op_attrs(op, inputs, Vec::new())
    }

    pub fn op_attrs(&mut self, op: &str, inputs: &[&str], attrs: Vec<(&str, AttrValue)>) -> String {
        let out = self.fresh(op);
        let mut node = Node::new(
            op,
            "",
            inputs.iter().map(|s| s.to_string()).collect(),
            vec![out.clone()],
        );
        for (k, v) in attrs {
            node = node.with_attr(k, v);
        }
        self.graph.nodes.push(node);
        out
    }

    pub fn output(&mut self, name: &str) {
        self.graph.outputs.push(ValueInfo {
            name: name.to_string(),
            ty: None,
            doc_string: String::new(),
            metadata_props: Vec::new(),
        });
    }

    pub fn build(mut self) -> Model {
        self.graph.check().unwrap();
        model_of(self.graph, self.opset)
    }
}

/// A model of `graph` importing the default domain at `opset` (IR version 8).
pub fn model_of(graph: Graph, opset: i64) -> Model {
    Model {
        ir_version: 8,
        opset_imports: vec![OpsetImport {
            domain: String::new(),
            version: opset,
        }],
        graph,
        ..Model::default()
    }
}

/// A `--fix-shapes` spec fixing every input at its shape in `inputs` (`input_ids=2x16,...`).
pub fn spec_by_input(inputs: &[Tensor]) -> String {
    inputs
        .iter()
        .map(|t| {
            let dims: Vec<String> = t.dims.iter().map(i64::to_string).collect();
            format!("{}={}", t.name, dims.join("x"))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Values in [-2, 2) from a seed and an index (splitmix64).
pub fn pseudo_random(seed: u64, i: u64) -> f32 {
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(i.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    ((z >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
}

pub fn run_with(model: &Model, fusions: &str) -> (Model, Report) {
    let options = OptimizeOptions {
        fusions: fusions.parse::<FusionSet>().unwrap(),
        ..OptimizeOptions::default()
    };
    optimize(model, &options).unwrap()
}

/// The node of `model` that produces `value`.
pub fn producer<'a>(model: &'a Model, value: &str) -> Option<&'a Node> {
    model
        .graph
        .nodes
        .iter()
        .find(|n| n.outputs.iter().any(|o| o == value))
}

/// Count of nodes with this op type (any domain).
pub fn count(model: &Model, op: &str) -> usize {
    model.graph.nodes.iter().filter(|n| n.op_type == op).count()
}

/// Random inputs for every float graph input, with symbolic dims set from `sizes`.
pub fn random_inputs(model: &Model, sizes: &[(&str, usize)], seed: u64) -> HashMap<String, Value> {
    let mut out = HashMap::new();
    for (k, input) in model.graph.inputs.iter().enumerate() {
        let shape: Vec<i64> = input
            .shape()
            .unwrap()
            .iter()
            .map(|d| match d {
                Dim::Known(v) => *v,
                Dim::Symbol(s) => sizes
                    .iter()
                    .find(|(n, _)| n == s)
                    .map(|(_, v)| *v as i64)
                    .unwrap(),
                Dim::Unknown => 1,
            })
            .collect();
        let n: i64 = shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|i| pseudo_random(seed + k as u64, i as u64))
            .collect();
        out.insert(
            input.name.clone(),
            Value::from_tensor(&Tensor::from_f32(&input.name, shape, &values)).unwrap(),
        );
    }
    out
}

/// Runs both models in the reference interpreter and returns the largest absolute
/// difference over all outputs.
pub fn max_diff(a: &Model, b: &Model, inputs: &HashMap<String, Value>) -> f64 {
    let ra = Interpreter::new(a).unwrap().run(inputs).unwrap();
    let rb = Interpreter::new(b).unwrap().run(inputs).unwrap();
    let mut worst = 0.0f64;
    for o in &a.graph.outputs {
        let x = ra[&o.name].to_f64_vec();
        let y = rb[&o.name].to_f64_vec();
        assert_eq!(x.len(), y.len(), "output {} length", o.name);
        for (p, q) in x.iter().zip(&y) {
            let d = (p - q).abs();
            assert!(!d.is_nan(), "NaN in output {}", o.name);
            worst = worst.max(d);
        }
    }
    worst
}
