//! Structural mutations of a model, driven by the fuzzer's bytes.
//!
//! Each mutation keeps the model decodable but may make it invalid (a cycle, a type error);
//! callers check the graph and skip invalid ones. The kinds, chosen by one byte each:
//! attribute values, small constants, rewired node inputs (to a value defined earlier, so
//! most rewirings keep the graph acyclic), op swaps within a family of same-arity ops, declared
//! dims (including huge ones), opset versions (including unknown future ones and a
//! `com.microsoft` import at version 0) and removed optional inputs.

use transfuse_ir::{AttrValue, Dim, Model, OpsetImport, Tensor, ValueType};

/// Reads choices from the fuzzer's bytes; past the end every read is 0.
#[derive(Debug)]
pub struct ByteSource<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> ByteSource<'a> {
    /// A source over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        ByteSource { data, pos: 0 }
    }

    /// The next byte, or 0 past the end.
    pub fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    /// A number in `0..n` (0 when `n` is 0). One byte for `n <= 256`, two otherwise.
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        let raw = if n <= 256 {
            usize::from(self.byte())
        } else {
            usize::from(self.byte()) << 8 | usize::from(self.byte())
        };
        raw % n
    }

    /// One of `options` (the first when empty is impossible: callers pass non-empty slices).
    pub fn pick<T: Copy>(&mut self, options: &[T]) -> Option<T> {
        options.get(self.below(options.len())).copied()
    }
}

/// Integer attribute values that exercise bounds: axes, counts, flags, huge values.
const INTS: &[i64] = &[
    -3,
    -2,
    -1,
    0,
    1,
    2,
    3,
    4,
    7,
    64,
    1 << 31,
    i64::MAX,
    i64::MIN,
];
/// Float values that exercise numerics: zero, signs, tiny, huge, non-finite.
const FLOATS: &[f32] = &[
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    2.0,
    1e-12,
    -1e-5,
    3.4e38,
    -3.4e38,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::NAN,
    1.0e-40,
];
/// Declared dims: small, zero, huge (the analysis must not allocate by them).
const DIMS: &[i64] = &[0, 1, 2, 3, 16, 64, 1 << 31, 1 << 62, i64::MAX, -1];
/// Default-domain opset versions, including ones before and after what exporters write.
const OPSETS: &[i64] = &[1, 7, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 99];
/// Families of ops with the same inputs, swapped for one another.
const FAMILIES: &[&[&str]] = &[
    &["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"],
    &[
        "Relu",
        "Sigmoid",
        "Tanh",
        "Erf",
        "Sqrt",
        "Neg",
        "Abs",
        "Exp",
        "Reciprocal",
        "Identity",
    ],
    &["ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin"],
    &["Softmax", "LogSoftmax"],
    &["Equal", "Less", "Greater"],
];

/// Applies up to 7 mutations, as many as the first byte says.
pub fn mutate(model: &mut Model, source: &mut ByteSource<'_>) {
    let count = source.below(8);
    for _ in 0..count {
        match source.below(8) {
            0 => mutate_attribute(model, source),
            1 => mutate_constant(model, source),
            2 => rewire(model, source),
            3 => swap_op(model, source),
            4 => mutate_declared_dim(model, source),
            5 => mutate_opset(model, source),
            6 => drop_input(model, source),
            _ => mutate_constant(model, source),
        }
    }
}

fn mutate_attribute(model: &mut Model, source: &mut ByteSource<'_>) {
    let nodes = &mut model.graph.nodes;
    let k = source.below(nodes.len());
    let Some(node) = nodes.get_mut(k) else { return };
    let a = source.below(node.attributes.len());
    let Some(attr) = node.attributes.get_mut(a) else {
        return;
    };
    match &mut attr.value {
        AttrValue::Int(v) => *v = source.pick(INTS).unwrap_or(0),
        AttrValue::Float(v) => *v = source.pick(FLOATS).unwrap_or(0.0),
        AttrValue::Ints(v) => {
            let i = source.below(v.len());
            if let Some(x) = v.get_mut(i) {
                *x = source.pick(INTS).unwrap_or(0);
            } else {
                v.push(source.pick(INTS).unwrap_or(0));
            }
        }
        AttrValue::Floats(v) => {
            let i = source.below(v.len());
            if let Some(x) = v.get_mut(i) {
                *x = source.pick(FLOATS).unwrap_or(0.0);
            }
        }
        AttrValue::Tensor(t) => {
            if let Some(new) = mutated_tensor(t, source) {
                *t = new;
            }
        }
        _ => {}
    }
}

/// Changes one element of a constant of at most 4096 elements (initializer or `Constant`).
fn mutate_constant(model: &mut Model, source: &mut ByteSource<'_>) {
    let graph = &mut model.graph;
    let small: Vec<String> = graph
        .initializers
        .iter()
        .filter(|(_, t)| t.numel().is_ok_and(|n| (1..=4096).contains(&n)))
        .map(|(n, _)| n.clone())
        .collect();
    let Some(name) = small.get(source.below(small.len())) else {
        return;
    };
    let Some(tensor) = graph.initializers.get(name) else {
        return;
    };
    if let Some(new) = mutated_tensor(tensor, source) {
        graph
            .initializers
            .insert(name.clone(), std::sync::Arc::new(new));
    }
}

/// A copy of `t` with one element replaced by an interesting value of its type.
fn mutated_tensor(t: &Tensor, source: &mut ByteSource<'_>) -> Option<Tensor> {
    use transfuse_ir::DataType;
    let name = t.name.clone();
    let dims = t.dims.clone();
    match t.dtype {
        DataType::Float => {
            let mut v = t.to_f32_vec().ok()?;
            let i = source.below(v.len());
            *v.get_mut(i)? = source.pick(FLOATS)?;
            Some(Tensor::from_f32(name, dims, &v))
        }
        DataType::Int64 => {
            let mut v = t.to_i64_vec().ok()?;
            let i = source.below(v.len());
            *v.get_mut(i)? = source.pick(INTS)?;
            Some(Tensor::from_i64(name, dims, &v))
        }
        _ => None,
    }
}

/// Points one node input at a value defined before the node (graph input, initializer or an
/// earlier node's output).
fn rewire(model: &mut Model, source: &mut ByteSource<'_>) {
    let graph = &mut model.graph;
    let k = source.below(graph.nodes.len());
    let mut earlier: Vec<String> = graph.inputs.iter().map(|v| v.name.clone()).collect();
    earlier.extend(graph.initializers.keys().cloned());
    for n in graph.nodes.iter().take(k) {
        earlier.extend(n.outputs.iter().filter(|o| !o.is_empty()).cloned());
    }
    let Some(node) = graph.nodes.get_mut(k) else {
        return;
    };
    let i = source.below(node.inputs.len());
    let Some(new) = earlier.get(source.below(earlier.len())).cloned() else {
        return;
    };
    if let Some(slot) = node.inputs.get_mut(i) {
        *slot = new;
    }
}

fn swap_op(model: &mut Model, source: &mut ByteSource<'_>) {
    let nodes = &mut model.graph.nodes;
    let k = source.below(nodes.len());
    let Some(node) = nodes.get_mut(k) else { return };
    if !node.domain.is_empty() && node.domain != "ai.onnx" {
        return;
    }
    if let Some(family) = FAMILIES.iter().find(|f| f.contains(&node.op_type.as_str()))
        && let Some(op) = source.pick(family)
    {
        node.op_type = op.to_string();
    }
}

/// Replaces one dim of a declared shape (graph input, output or value info).
fn mutate_declared_dim(model: &mut Model, source: &mut ByteSource<'_>) {
    let graph = &mut model.graph;
    let total = graph.inputs.len() + graph.outputs.len() + graph.value_info.len();
    let k = source.below(total);
    let info = if k < graph.inputs.len() {
        graph.inputs.get_mut(k)
    } else if k < graph.inputs.len() + graph.outputs.len() {
        graph.outputs.get_mut(k - graph.inputs.len())
    } else {
        graph
            .value_info
            .get_mut(k - graph.inputs.len() - graph.outputs.len())
    };
    let Some(info) = info else { return };
    if let Some(ValueType::Tensor {
        shape: Some(shape), ..
    }) = &mut info.ty
    {
        let d = source.below(shape.len());
        let value = source.pick(DIMS).unwrap_or(1);
        if let Some(dim) = shape.get_mut(d) {
            *dim = if value < 0 {
                Dim::Unknown
            } else {
                Dim::Known(value)
            };
        }
    }
}

fn mutate_opset(model: &mut Model, source: &mut ByteSource<'_>) {
    if source.below(4) == 0 {
        // A com.microsoft import at version 0 (or replace the existing one).
        model.opset_imports.retain(|o| o.domain != "com.microsoft");
        model.opset_imports.push(OpsetImport {
            domain: "com.microsoft".to_string(),
            version: 0,
        });
        return;
    }
    let version = source.pick(OPSETS).unwrap_or(17);
    if let Some(o) = model
        .opset_imports
        .iter_mut()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
    {
        o.version = version;
    }
}

/// Removes a node's last input (optional inputs are trailing).
fn drop_input(model: &mut Model, source: &mut ByteSource<'_>) {
    let nodes = &mut model.graph.nodes;
    let k = source.below(nodes.len());
    if let Some(node) = nodes.get_mut(k) {
        node.inputs.pop();
    }
}
