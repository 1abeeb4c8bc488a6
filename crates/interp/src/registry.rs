//! The op table: which (domain, op type, opset range) has a kernel, and how to build it.
//!
//! Every op family file registers its ops in [`crate::ops::register_all`]; preparing a
//! model looks each node up here once and builds its kernel (parsing attributes), so
//! attribute errors and unsupported ops are reported before anything runs.

use std::collections::HashMap;
use std::fmt::Debug;
use std::ops::RangeInclusive;

use transfuse_ir::{AttrValue, Node, Tensor};

use crate::error::{OpError, OpResult};
use crate::value::Value;

/// A prepared op: attributes parsed, ready to run on inputs.
pub(crate) trait Kernel: Debug + Send + Sync {
    /// Computes the node's outputs. The returned vector holds at least every output the
    /// node names (up to the last non-empty output name), in order.
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>>;
}

/// One node input while a kernel runs.
#[derive(Debug)]
pub(crate) enum Arg<'a> {
    /// An omitted optional input.
    Absent,
    /// A value that stays alive after this node (initializer, graph input, or a value
    /// other nodes read later).
    Borrowed(&'a Value),
    /// A value whose last reader is this node: the kernel may reuse its buffer.
    Owned(Value),
}

/// The inputs of one node while its kernel runs.
#[derive(Debug)]
pub(crate) struct Inputs<'a> {
    args: Vec<Arg<'a>>,
}

impl<'a> Inputs<'a> {
    /// Wraps the node's arguments.
    pub(crate) fn new(args: Vec<Arg<'a>>) -> Inputs<'a> {
        Inputs { args }
    }

    /// Number of input positions (including omitted ones).
    pub(crate) fn len(&self) -> usize {
        self.args.len()
    }

    /// Input `i`, or `None` when it is omitted or past the end.
    pub(crate) fn get(&self, i: usize) -> Option<&Value> {
        match self.args.get(i)? {
            Arg::Absent => None,
            Arg::Borrowed(v) => Some(v),
            Arg::Owned(v) => Some(v),
        }
    }

    /// Input `i`, which the op requires; `name` is its name in the op schema.
    pub(crate) fn req(&self, i: usize, name: &'static str) -> OpResult<&Value> {
        self.get(i).ok_or(OpError::MissingInput { index: i, name })
    }

    /// Input `i` as an owned value: moved out when this node is its last reader, cloned
    /// otherwise. The position reads as omitted afterwards.
    pub(crate) fn take(&mut self, i: usize, name: &'static str) -> OpResult<Value> {
        let slot = self
            .args
            .get_mut(i)
            .ok_or(OpError::MissingInput { index: i, name })?;
        match std::mem::replace(slot, Arg::Absent) {
            Arg::Absent => Err(OpError::MissingInput { index: i, name }),
            Arg::Borrowed(v) => Ok(v.clone()),
            Arg::Owned(v) => Ok(v),
        }
    }

    /// Replaces every f16 input by `widen` of it (owned); true when there was one.
    pub(crate) fn widen_f16(
        &mut self,
        widen: fn(&ndarray::ArrayD<half::f16>) -> ndarray::ArrayD<f32>,
    ) -> bool {
        let mut any = false;
        for arg in &mut self.args {
            let wide = match arg {
                Arg::Borrowed(Value::F16(a)) => widen(a),
                Arg::Owned(Value::F16(a)) => widen(a),
                _ => continue,
            };
            *arg = Arg::Owned(Value::F32(wide));
            any = true;
        }
        any
    }

    /// True when input `i` is present and owned (taking it costs no copy).
    pub(crate) fn is_owned(&self, i: usize) -> bool {
        matches!(self.args.get(i), Some(Arg::Owned(_)))
    }
}

/// What a kernel builder sees: the node and the opset its domain is imported at.
#[derive(Debug)]
pub(crate) struct BuildCtx<'a> {
    /// The node.
    pub node: &'a Node,
    /// The imported opset version of the node's domain.
    pub opset: i64,
}

impl BuildCtx<'_> {
    fn attr(&self, name: &str) -> Option<&AttrValue> {
        self.node.attr(name)
    }

    /// An integer attribute, or `default` when absent; errors when present with another kind.
    pub(crate) fn int(&self, name: &str, default: i64) -> OpResult<i64> {
        Ok(self.opt_int(name)?.unwrap_or(default))
    }

    /// An optional integer attribute.
    pub(crate) fn opt_int(&self, name: &str) -> OpResult<Option<i64>> {
        match self.attr(name) {
            None => Ok(None),
            Some(AttrValue::Int(v)) => Ok(Some(*v)),
            Some(other) => Err(wrong_kind(name, "an int", other)),
        }
    }

    /// A float attribute, or `default` when absent.
    pub(crate) fn float(&self, name: &str, default: f32) -> OpResult<f32> {
        Ok(self.opt_float(name)?.unwrap_or(default))
    }

    /// An optional float attribute.
    pub(crate) fn opt_float(&self, name: &str) -> OpResult<Option<f32>> {
        match self.attr(name) {
            None => Ok(None),
            Some(AttrValue::Float(v)) => Ok(Some(*v)),
            Some(other) => Err(wrong_kind(name, "a float", other)),
        }
    }

    /// An optional list-of-integers attribute.
    pub(crate) fn ints(&self, name: &str) -> OpResult<Option<Vec<i64>>> {
        match self.attr(name) {
            None => Ok(None),
            Some(AttrValue::Ints(v)) => Ok(Some(v.clone())),
            Some(other) => Err(wrong_kind(name, "a list of ints", other)),
        }
    }

    /// An optional list-of-floats attribute.
    pub(crate) fn floats(&self, name: &str) -> OpResult<Option<Vec<f32>>> {
        match self.attr(name) {
            None => Ok(None),
            Some(AttrValue::Floats(v)) => Ok(Some(v.clone())),
            Some(other) => Err(wrong_kind(name, "a list of floats", other)),
        }
    }

    /// A string attribute, or `default` when absent.
    pub(crate) fn string(&self, name: &str, default: &str) -> OpResult<String> {
        match self.attr(name) {
            None => Ok(default.to_string()),
            Some(AttrValue::String(s)) => Ok(String::from_utf8_lossy(s).into_owned()),
            Some(other) => Err(wrong_kind(name, "a string", other)),
        }
    }

    /// An optional tensor attribute.
    pub(crate) fn tensor(&self, name: &str) -> OpResult<Option<&Tensor>> {
        match self.attr(name) {
            None => Ok(None),
            Some(AttrValue::Tensor(t)) => Ok(Some(t)),
            Some(other) => Err(wrong_kind(name, "a tensor", other)),
        }
    }

    /// Errors when the attribute is present: for attributes of an opset that this opset
    /// replaced by an input, or features the kernel does not implement.
    pub(crate) fn reject(&self, name: &str, reason: &str) -> OpResult<()> {
        match self.attr(name) {
            Some(_) => Err(OpError::attr(name, reason)),
            None => Ok(()),
        }
    }
}

fn wrong_kind(name: &str, expected: &str, got: &AttrValue) -> OpError {
    let kind = match got {
        AttrValue::Float(_) => "a float",
        AttrValue::Int(_) => "an int",
        AttrValue::String(_) => "a string",
        AttrValue::Tensor(_) => "a tensor",
        AttrValue::Graph(_) => "a graph",
        AttrValue::Floats(_) => "a list of floats",
        AttrValue::Ints(_) => "a list of ints",
        AttrValue::Strings(_) => "a list of strings",
        _ => "another kind",
    };
    OpError::attr(name, format!("expected {expected}, found {kind}"))
}

/// Builds a kernel for a node.
pub(crate) type Builder = fn(&BuildCtx<'_>) -> OpResult<Box<dyn Kernel>>;

/// One registered op.
#[derive(Debug, Clone)]
pub(crate) struct OpEntry {
    /// Opset versions of the op's domain this kernel implements.
    pub opsets: RangeInclusive<i64>,
    /// The builder.
    pub build: Builder,
}

/// The table of every op the interpreter runs, keyed by (canonical domain, op type).
#[derive(Debug, Default)]
pub(crate) struct Registry {
    entries: HashMap<(String, String), Vec<OpEntry>>,
}

/// The default ONNX domain, as stored in the table.
pub(crate) const ONNX: &str = "";
/// ONNX Runtime's contrib-op domain.
pub(crate) const MS: &str = "com.microsoft";

/// The newest default-domain opset whose semantics this interpreter implements. Opset 23
/// changed the existing ops only by adding element types (4-bit floats and integers, which
/// the interpreter rejects when they occur) and added `RMSNormalization`, `Attention` and
/// `RotaryEmbedding`.
pub(crate) const MAX_ONNX_OPSET: i64 = 23;

impl Registry {
    /// Registers `op_type` of `domain` for the given opsets. Several registrations of one
    /// op must cover disjoint opset ranges.
    pub(crate) fn insert(
        &mut self,
        domain: &str,
        op_type: &str,
        opsets: RangeInclusive<i64>,
        build: Builder,
    ) {
        self.entries
            .entry((domain.to_string(), op_type.to_string()))
            .or_default()
            .push(OpEntry { opsets, build });
    }

    /// The entry for this op at this opset.
    pub(crate) fn lookup(&self, domain: &str, op_type: &str, opset: i64) -> Option<&OpEntry> {
        self.entries
            .get(&(canonical_domain(domain).to_string(), op_type.to_string()))?
            .iter()
            .find(|e| e.opsets.contains(&opset))
    }

    /// Every registered op as (domain, op type, opset range), sorted.
    pub(crate) fn list(&self) -> Vec<(String, String, RangeInclusive<i64>)> {
        let mut out: Vec<_> = self
            .entries
            .iter()
            .flat_map(|((d, o), es)| {
                es.iter()
                    .map(move |e| (d.clone(), o.clone(), e.opsets.clone()))
            })
            .collect();
        out.sort_by(|a, b| (&a.0, &a.1, a.2.start()).cmp(&(&b.0, &b.1, b.2.start())));
        out
    }
}

/// `ai.onnx` and `""` are the same domain.
pub(crate) fn canonical_domain(domain: &str) -> &str {
    if domain == "ai.onnx" { ONNX } else { domain }
}
