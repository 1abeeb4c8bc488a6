//! Conversion of a model to float16: weights and activations in fp16, the graph's inputs
//! and outputs in their original types.
//!
//! [`to_float16`] follows ONNX Runtime's `convert_float_to_float16` with
//! `keep_io_types=True`:
//! - every f32 initializer and `Constant` read by an fp16 node becomes fp16, rounded to
//!   nearest even after clamping as ONNX Runtime's tool clamps: non-zero magnitudes below
//!   [`Float16Options::min_positive`] become that value, finite magnitudes above
//!   [`Float16Options::max_finite`] become that value (infinities and NaN stay), so a
//!   mask constant such as `-3.4e38` becomes `-1e4` rather than `-inf`;
//! - every f32 value a converted node computes is fp16 (`Cast` nodes to f32 now cast to
//!   fp16; `ConstantOfShape` fills with an fp16 value);
//! - nodes whose op type is in [`Float16Options::op_block_list`] (by default
//!   [`DEFAULT_OP_BLOCK_LIST`]), whose name is in [`Float16Options::node_block_list`], in a
//!   domain other than ONNX's and `com.microsoft`, or with a value of unknown element type,
//!   stay in f32, with `Cast` nodes around them;
//! - each f32 graph input read by fp16 nodes gets one `Cast` to fp16, and each f32 graph
//!   output computed in fp16 one `Cast` back to f32, which takes the output's name: the
//!   model keeps its signature. Integer inputs (token ids, masks) are untouched, as is
//!   everything that is not f32 (shape arithmetic stays int64).
//!
//! Float attributes (`epsilon`, `alpha`, `scale`) stay attributes, whose type ONNX fixes.
//! Outputs whose type an op's schema fixes to f32 whatever its input type (the mean and
//! inverse standard deviation of the layer norms, `Resize` scales) stay f32.
//! `value_info` follows the new types.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use transfuse_ir::{AttrValue, DataType, Dim, Model, Node, Tensor, TensorData, ValueInfo};

use crate::error::RewriteError;
use crate::fresh_names::FreshNames;

/// ONNX Runtime's `DEFAULT_OP_BLOCK_LIST` (`onnxruntime.transformers.float16`): ops kept
/// in f32 because their fp16 forms are missing or imprecise, plus the ops that create
/// floats from a `dtype` attribute (they keep f32 and are cast).
pub const DEFAULT_OP_BLOCK_LIST: &[&str] = &[
    "ArrayFeatureExtractor",
    "Binarizer",
    "CastMap",
    "CategoryMapper",
    "DictVectorizer",
    "FeatureVectorizer",
    "Imputer",
    "LabelEncoder",
    "LinearClassifier",
    "LinearRegressor",
    "Normalizer",
    "OneHotEncoder",
    "RandomUniformLike",
    "SVMClassifier",
    "SVMRegressor",
    "Scaler",
    "TreeEnsembleClassifier",
    "TreeEnsembleRegressor",
    "ZipMap",
    "NonMaxSuppression",
    "TopK",
    "RoiAlign",
    "Resize",
    "Range",
    "CumSum",
    "Min",
    "Max",
    "Upsample",
    // Not in ONNX Runtime's list: their output type comes from an attribute.
    "RandomNormal",
    "RandomUniform",
    "RandomNormalLike",
    "EyeLike",
    "Multinomial",
    "Bernoulli",
];

/// Options of [`to_float16`].
#[derive(Clone, Debug, PartialEq)]
pub struct Float16Options {
    /// Op types kept in f32 (any domain).
    pub op_block_list: Vec<String>,
    /// Node names kept in f32.
    pub node_block_list: Vec<String>,
    /// Non-zero weights of smaller magnitude are raised to this (ONNX Runtime: `1e-7`).
    pub min_positive: f32,
    /// Finite weights of larger magnitude are clamped to this (ONNX Runtime: `1e4`).
    pub max_finite: f32,
}

impl Default for Float16Options {
    fn default() -> Self {
        Float16Options {
            op_block_list: DEFAULT_OP_BLOCK_LIST
                .iter()
                .map(ToString::to_string)
                .collect(),
            node_block_list: Vec::new(),
            min_positive: 1e-7,
            max_finite: 1e4,
        }
    }
}

/// What [`to_float16`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Float16Report {
    /// f32 initializers and `Constant` values converted to fp16.
    pub converted_tensors: usize,
    /// Elements clamped to `min_positive` or `max_finite` in those tensors.
    pub clamped_elements: usize,
    /// Nodes kept in f32, as `op_type (name)`.
    pub kept_f32: Vec<String>,
    /// `Cast` nodes added.
    pub casts_added: usize,
}

/// Which float type a value has, or a node computes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Precision {
    F32,
    F16,
}

/// Inputs typed f32 whatever the op's `T` is: `(op type, input position)`.
const F32_INPUTS: &[(&str, usize)] = &[("Resize", 2), ("Upsample", 1)];

/// Outputs typed f32 (`U`) whatever the op's `T` is.
const F32_OUTPUTS: &[(&str, usize)] = &[
    ("LayerNormalization", 1),
    ("LayerNormalization", 2),
    ("SkipLayerNormalization", 1),
    ("SkipLayerNormalization", 2),
    ("SimplifiedLayerNormalization", 1),
    ("SkipSimplifiedLayerNormalization", 1),
];

/// Converts `model` to float16 as the [module docs](self) describe.
///
/// Errors on a graph with subgraphs (their reads of outer values are not retyped) and on a
/// graph the IR's checks reject afterwards (a bug).
pub fn to_float16(
    model: &Model,
    options: &Float16Options,
) -> Result<(Model, Float16Report), RewriteError> {
    let graph = &model.graph;
    if let Some(node) = graph.nodes.iter().find(|n| n.has_subgraph()) {
        return Err(RewriteError::Float16(format!(
            "node '{}' has a subgraph; graphs with subgraphs are not converted",
            node.label()
        )));
    }
    let dtypes = value_dtypes(model)?;
    let is_f32 = |name: &str| dtypes.get(name) == Some(&DataType::Float);
    let mut report = Float16Report::default();

    // Which nodes compute in fp16.
    let blocked_ops: HashSet<&str> = options.op_block_list.iter().map(String::as_str).collect();
    let blocked_names: HashSet<&str> = options.node_block_list.iter().map(String::as_str).collect();
    let node_precision: Vec<Precision> = graph
        .nodes
        .iter()
        .map(|n| {
            let known = n
                .inputs
                .iter()
                .chain(&n.outputs)
                .filter(|v| !v.is_empty())
                .all(|v| dtypes.contains_key(v.as_str()));
            let domain_ok = matches!(n.domain.as_str(), "" | "ai.onnx" | transfuse_ir::MS_DOMAIN);
            if !known
                || !domain_ok
                || blocked_ops.contains(n.op_type.as_str())
                || blocked_names.contains(n.name.as_str())
            {
                Precision::F32
            } else {
                Precision::F16
            }
        })
        .collect();
    for (n, p) in graph.nodes.iter().zip(&node_precision) {
        let touches_f32 = n.inputs.iter().chain(&n.outputs).any(|v| is_f32(v));
        if *p == Precision::F32 && touches_f32 {
            report
                .kept_f32
                .push(format!("{} ({})", n.op_type, n.label()));
        }
    }

    // What each reader of an f32 value needs.
    let graph_inputs: HashSet<&str> = graph.inputs.iter().map(|v| v.name.as_str()).collect();
    let graph_outputs: HashSet<&str> = graph.outputs.iter().map(|v| v.name.as_str()).collect();
    let mut needs: HashMap<&str, HashSet<Precision>> = HashMap::new();
    for (n, p) in graph.nodes.iter().zip(&node_precision) {
        for (i, v) in n.inputs.iter().enumerate() {
            if is_f32(v) {
                let need = if F32_INPUTS.contains(&(n.op_type.as_str(), i)) {
                    Precision::F32
                } else {
                    *p
                };
                needs.entry(v).or_default().insert(need);
            }
        }
    }
    for v in &graph.outputs {
        needs.entry(&v.name).or_default().insert(Precision::F32);
    }
    let wants_f16 = |v: &str| needs.get(v).is_some_and(|s| s.contains(&Precision::F16));

    // Where each f32 value is produced, and in which precision.
    let mut home: HashMap<&str, Precision> = HashMap::new();
    for v in &graph.inputs {
        if is_f32(&v.name) {
            home.insert(&v.name, Precision::F32);
        }
    }
    for name in graph.initializers.keys() {
        if is_f32(name) && !graph_inputs.contains(name.as_str()) {
            let p = if wants_f16(name) {
                Precision::F16
            } else {
                Precision::F32
            };
            home.insert(name, p);
        }
    }
    for (n, p) in graph.nodes.iter().zip(&node_precision) {
        for (i, v) in n.outputs.iter().enumerate() {
            if !is_f32(v) {
                continue;
            }
            let p = if n.op_type == "Constant" && n.is_onnx() && *p == Precision::F16 {
                // A constant is converted only for fp16 readers.
                if wants_f16(v) {
                    Precision::F16
                } else {
                    Precision::F32
                }
            } else if F32_OUTPUTS.contains(&(n.op_type.as_str(), i)) {
                Precision::F32
            } else {
                *p
            };
            home.insert(v, p);
        }
    }

    // Names: a value keeps its name in its home precision, except a graph output made in
    // fp16, whose name goes to the Cast back to f32.
    let mut names = FreshNames::new(graph);
    let mut produced_as: HashMap<String, String> = HashMap::new();
    for (&v, &p) in &home {
        if p == Precision::F16 && graph_outputs.contains(v) {
            produced_as.insert(v.to_string(), names.fresh(&format!("{v}_fp16")));
        }
    }
    let mut casts = Casts::default();
    let shape_of = |v: &str| {
        graph
            .value_type(v)
            .and_then(|t| t.shape().map(<[Dim]>::to_vec))
    };

    let mut out = graph.clone_without_nodes();
    // Initializers.
    for (name, tensor) in &graph.initializers {
        match home.get(name.as_str()) {
            Some(Precision::F16) => {
                let new_name = produced_as
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| name.clone());
                let (t, clamped) = tensor_to_f16(tensor, &new_name, options)?;
                report.converted_tensors += 1;
                report.clamped_elements += clamped;
                out.initializers.insert(new_name, Arc::new(t));
            }
            _ => {
                out.initializers.insert(name.clone(), Arc::clone(tensor));
            }
        }
    }
    // Nodes.
    for (n, p) in graph.nodes.iter().zip(&node_precision) {
        let mut node = n.clone();
        for (i, v) in node.inputs.iter_mut().enumerate() {
            let Some(&have) = home.get(v.as_str()) else {
                continue;
            };
            let need = if F32_INPUTS.contains(&(n.op_type.as_str(), i)) {
                Precision::F32
            } else {
                *p
            };
            let source = produced_as
                .get(v.as_str())
                .cloned()
                .unwrap_or_else(|| v.clone());
            if have == need {
                *v = source;
            } else if need == Precision::F32 && graph_outputs.contains(v.as_str()) {
                // The Cast back to f32 of a graph output already has the original name.
            } else {
                *v = casts.get(&source, v, need, &mut names);
            }
        }
        for o in node.outputs.iter_mut() {
            if let Some(new) = produced_as.get(o.as_str()) {
                *o = new.clone();
            }
        }
        let output_f16 = n
            .outputs
            .iter()
            .any(|o| home.get(o.as_str()) == Some(&Precision::F16));
        if output_f16 && n.is_onnx() {
            retype_attributes(&mut node, options, &mut report)?;
        }
        out.nodes.push(node);
    }
    // Casts at the graph outputs.
    for v in &graph.outputs {
        if let Some(source) = produced_as.get(&v.name) {
            casts.add_named(source, &v.name, Precision::F32);
        }
    }
    report.casts_added = casts.nodes.len();
    for (cast, of) in &casts.created {
        let to = casts.target[cast];
        out.value_info
            .push(ValueInfo::tensor(cast.clone(), to.dtype(), shape_of(of)));
    }
    for (of, renamed) in &produced_as {
        out.value_info.push(ValueInfo::tensor(
            renamed.clone(),
            DataType::Float16,
            shape_of(of),
        ));
    }
    out.nodes.extend(casts.nodes);
    // value_info of values now made in fp16 under their own name.
    for vi in &mut out.value_info {
        if home.get(vi.name.as_str()) == Some(&Precision::F16)
            && !produced_as.contains_key(&vi.name)
            && let Some(transfuse_ir::ValueType::Tensor { elem_type, .. }) = &mut vi.ty
        {
            *elem_type = DataType::Float16;
        }
    }
    out.check()?;
    Ok((model.clone_with_graph(out), report))
}

impl Precision {
    fn dtype(self) -> DataType {
        match self {
            Precision::F32 => DataType::Float,
            Precision::F16 => DataType::Float16,
        }
    }
}

/// Element type of every value, from the rewrite analysis (declared types, initializers and
/// per-op inference), falling back to the declared `value_info`.
fn value_dtypes(model: &Model) -> Result<HashMap<String, DataType>, RewriteError> {
    let (egraph, imported) = crate::import::import(model)?;
    let mut out = HashMap::new();
    for (name, id) in &imported.names {
        let dtype = egraph[egraph.find(*id)]
            .data
            .dtype
            .or_else(|| model.graph.value_type(name).and_then(|t| t.elem_type()));
        if let Some(d) = dtype {
            out.insert(name.clone(), d);
        }
    }
    // Outputs the analysis leaves untyped (those of com.microsoft ops, and what follows
    // them), in topological order: the op's fixed output type where it has one, else the
    // type of its first float input (its `T`).
    for node in &model.graph.nodes {
        let float_input = node
            .inputs
            .iter()
            .filter_map(|v| out.get(v.as_str()).copied())
            .find(|d| d.is_float());
        for (i, o) in node.outputs.iter().enumerate() {
            if o.is_empty() || out.contains_key(o.as_str()) {
                continue;
            }
            if let Some(d) = fixed_output_type(node, i).or(float_input) {
                out.insert(o.clone(), d);
            }
        }
    }
    Ok(out)
}

/// The output types that do not follow the inputs' float type.
fn fixed_output_type(node: &Node, output: usize) -> Option<DataType> {
    Some(match (node.op_type.as_str(), output) {
        ("EmbedLayerNormalization", 1) => DataType::Int32,
        ("Shape" | "Size" | "ArgMax" | "ArgMin" | "NonZero", _) => DataType::Int64,
        (
            "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" | "Not" | "And" | "Or"
            | "Xor" | "IsNaN" | "IsInf",
            _,
        ) => DataType::Bool,
        ("Cast", 0) => DataType::from_code(i32::try_from(node.attr_int("to")?).ok()?),
        _ => return None,
    })
}

/// The `Cast` nodes added, one per (value, target type).
#[derive(Default)]
struct Casts {
    by_source: HashMap<(String, Precision), String>,
    nodes: Vec<Node>,
    /// (cast output, original value name), for `value_info`.
    created: Vec<(String, String)>,
    target: HashMap<String, Precision>,
}

impl Casts {
    /// The name of `source` cast to `to`, adding the node the first time.
    fn get(
        &mut self,
        source: &str,
        original: &str,
        to: Precision,
        names: &mut FreshNames,
    ) -> String {
        if let Some(name) = self.by_source.get(&(source.to_string(), to)) {
            return name.clone();
        }
        let suffix = match to {
            Precision::F32 => "fp32",
            Precision::F16 => "fp16",
        };
        let name = names.fresh(&format!("{original}_{suffix}"));
        self.add_named(source, &name, to);
        self.created.push((name.clone(), original.to_string()));
        name
    }

    fn add_named(&mut self, source: &str, name: &str, to: Precision) {
        let node = Node {
            name: format!("{name}_cast"),
            ..Node::new("Cast", "", vec![source.to_string()], vec![name.to_string()])
        }
        .with_attr("to", AttrValue::Int(i64::from(to.dtype().code())));
        self.by_source
            .insert((source.to_string(), to), name.to_string());
        self.target.insert(name.to_string(), to);
        self.nodes.push(node);
    }
}

/// A node converted to fp16: `Cast` to f32 casts to fp16, `ConstantOfShape` and `Constant`
/// hold fp16 values.
fn retype_attributes(
    node: &mut Node,
    options: &Float16Options,
    report: &mut Float16Report,
) -> Result<(), RewriteError> {
    let float = i64::from(DataType::Float.code());
    let half = i64::from(DataType::Float16.code());
    match node.op_type.as_str() {
        "Cast" => {
            for a in &mut node.attributes {
                if a.name == "to" && a.value == AttrValue::Int(float) {
                    a.value = AttrValue::Int(half);
                }
            }
        }
        "ConstantOfShape" => {
            let value = node.attr_tensor("value").cloned();
            let fill = match value {
                Some(t) if t.dtype == DataType::Float => tensor_to_f16(&t, &t.name, options)?.0,
                Some(_) => return Ok(()),
                // The default fill is an f32 zero.
                None => Tensor::from_f16_bits("value", vec![1], &[0]),
            };
            node.attributes.retain(|a| a.name != "value");
            node.attributes.push(transfuse_ir::Attribute::new(
                "value",
                AttrValue::Tensor(fill),
            ));
        }
        "Constant" => {
            let value = match node.attributes.as_slice() {
                [a] => match &a.value {
                    AttrValue::Tensor(t) if t.dtype == DataType::Float => t.clone(),
                    AttrValue::Float(x) => Tensor::from_f32("value", vec![], &[*x]),
                    AttrValue::Floats(x) => Tensor::from_f32("value", vec![x.len() as i64], x),
                    _ => return Ok(()),
                },
                _ => return Ok(()),
            };
            let (t, clamped) = tensor_to_f16(&value, &value.name, options)?;
            report.converted_tensors += 1;
            report.clamped_elements += clamped;
            node.attributes = vec![transfuse_ir::Attribute::new("value", AttrValue::Tensor(t))];
        }
        _ => {}
    }
    Ok(())
}

/// An f32 tensor as fp16 under `name`, clamped as [`Float16Options`] says, with the number
/// of clamped elements. A tensor without data (a skeleton's weight) stays without data.
fn tensor_to_f16(
    t: &Tensor,
    name: &str,
    options: &Float16Options,
) -> Result<(Tensor, usize), RewriteError> {
    let mut clamped = 0;
    let data = if matches!(t.data, TensorData::Empty) {
        TensorData::Empty
    } else {
        let values = t.to_f32_vec()?;
        let bits: Vec<u16> = values
            .iter()
            .map(|&x| {
                let (y, c) = clamp(x, options.min_positive, options.max_finite);
                clamped += usize::from(c);
                half::f16::from_f32(y).to_bits()
            })
            .collect();
        Tensor::from_f16_bits(name, t.dims.clone(), &bits).data
    };
    Ok((
        Tensor {
            name: name.to_string(),
            dtype: DataType::Float16,
            data,
            external: None,
            ..t.clone()
        },
        clamped,
    ))
}

/// ONNX Runtime's clamping before the conversion: `(value, whether it changed)`.
fn clamp(x: f32, min_positive: f32, max_finite: f32) -> (f32, bool) {
    let y = if x > 0.0 && x < min_positive {
        min_positive
    } else if x < 0.0 && x > -min_positive {
        -min_positive
    } else if x > max_finite && x.is_finite() {
        max_finite
    } else if x < -max_finite && x.is_finite() {
        -max_finite
    } else {
        x
    };
    (y, y.to_bits() != x.to_bits())
}
