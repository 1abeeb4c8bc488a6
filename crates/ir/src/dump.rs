//! A stable, human-readable text form of a graph, for snapshots and debugging.

use std::fmt::Write;

use crate::graph::{AttrValue, Graph, ValueInfo};
use crate::tensor::TensorData;
use crate::{Model, Tensor};

impl Model {
    /// The model as text: opsets, then the graph (see [`Graph::dump`]).
    pub fn dump(&self) -> String {
        let mut out = String::new();
        let opsets: Vec<String> = self
            .opset_imports
            .iter()
            .map(|o| {
                format!(
                    "{}:{}",
                    if o.domain.is_empty() {
                        "ai.onnx"
                    } else {
                        &o.domain
                    },
                    o.version
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "model ir_version={} opsets=[{}]",
            self.ir_version,
            opsets.join(", ")
        );
        out.push_str(&self.graph.dump());
        out
    }
}

impl Graph {
    /// The graph as text: inputs, outputs, initializers (name, type, shape) and one line per
    /// node (`outputs = domain.Op[attrs](inputs)`). Deterministic for a given graph.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "graph {}", self.name);
        for v in &self.inputs {
            let _ = writeln!(out, "  input {}", value(v));
        }
        for v in &self.outputs {
            let _ = writeln!(out, "  output {}", value(v));
        }
        for t in self.initializers.values() {
            let _ = writeln!(out, "  init {}: {}", t.name, tensor_summary(t));
        }
        for n in &self.nodes {
            let op = if n.is_onnx() {
                n.op_type.clone()
            } else {
                format!("{}.{}", n.domain, n.op_type)
            };
            let attrs: Vec<String> = n
                .attributes
                .iter()
                .map(|a| format!("{}={}", a.name, attr(&a.value)))
                .collect();
            let attrs = if attrs.is_empty() {
                String::new()
            } else {
                format!("[{}]", attrs.join(", "))
            };
            let _ = writeln!(
                out,
                "  {} = {op}{attrs}({})",
                n.outputs.join(", "),
                n.inputs.join(", ")
            );
        }
        out
    }
}

fn value(v: &ValueInfo) -> String {
    match (v.elem_type(), v.shape()) {
        (Some(t), Some(s)) => {
            format!(
                "{}: {t}[{}]",
                v.name,
                s.iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            )
        }
        (Some(t), None) => format!("{}: {t}[..]", v.name),
        _ => v.name.clone(),
    }
}

fn tensor_summary(t: &Tensor) -> String {
    let dims = t
        .dims
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let n = t.numel().unwrap_or(0);
    let values = if n <= 8 && !matches!(t.data, TensorData::Empty) {
        match t.to_f64_vec() {
            Ok(v) => format!(" = {}", fmt_numbers(&v)),
            Err(_) => String::new(),
        }
    } else {
        String::new()
    };
    format!("{}[{dims}]{values}", t.dtype)
}

fn fmt_numbers(v: &[f64]) -> String {
    let items: Vec<String> = v.iter().map(|x| format!("{}", *x as f32)).collect();
    format!("[{}]", items.join(", "))
}

fn attr(v: &AttrValue) -> String {
    match v {
        AttrValue::Float(f) => format!("{f}"),
        AttrValue::Int(i) => i.to_string(),
        AttrValue::String(s) => format!("{:?}", String::from_utf8_lossy(s)),
        AttrValue::Tensor(t) => tensor_summary(t),
        AttrValue::Graph(g) => format!("<graph {} nodes>", g.node.len()),
        AttrValue::Floats(v) => format!("{v:?}"),
        AttrValue::Ints(v) => format!("{v:?}"),
        AttrValue::Strings(v) => {
            format!(
                "{:?}",
                v.iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<Vec<_>>()
            )
        }
        AttrValue::Tensors(v) => format!("<{} tensors>", v.len()),
        AttrValue::Graphs(v) => format!("<{} graphs>", v.len()),
        AttrValue::SparseTensor(_) => "<sparse tensor>".into(),
        AttrValue::SparseTensors(v) => format!("<{} sparse tensors>", v.len()),
        AttrValue::TypeProto(_) => "<type>".into(),
        AttrValue::TypeProtos(v) => format!("<{} types>", v.len()),
        AttrValue::Undefined => "<undefined>".into(),
    }
}
