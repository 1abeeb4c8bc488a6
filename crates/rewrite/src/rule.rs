//! Building blocks for fusion rules: a rule constructor and queries on the analysis.
//!
//! A rule is an egg pattern (the structure) plus an applier written in Rust that checks the
//! conditions on analysis facts (constant values, shapes, element types) and builds the
//! replacement. Conditions must ask the analysis, never the syntax of the match: an e-class
//! can gain members later, and the same value may be spelled many ways.

use std::fmt;
use std::sync::Arc;

use egg::{Applier, Id, Pattern, PatternAst, SearchMatches, Searcher, Subst, Symbol, Var};
use transfuse_ir::DataType;

use crate::analysis::{ClassData, EGraph, OnnxAnalysis};
use crate::error::RewriteError;
use crate::lang::{Onnx, OpNode, TensorId, is_default_domain};
use crate::symbolic::{Shape, SymDim};

/// A rewrite rule of this crate.
pub type Rewrite = egg::Rewrite<Onnx, OnnxAnalysis>;

/// The bindings of one match: the matched e-class and the pattern variables.
#[derive(Debug)]
pub struct Match<'a> {
    /// The e-class the pattern's root matched.
    pub root: Id,
    subst: &'a Subst,
}

impl Match<'_> {
    /// The e-class bound to `var` (`"?x"`).
    pub fn get(&self, var: &str) -> Option<Id> {
        let v: Var = var.parse().ok()?;
        self.subst.get(v).copied()
    }
}

/// What an applier does with a match: `Some(id)` to merge `id` into the matched class,
/// `None` when the conditions do not hold.
pub type ApplyFn = dyn Fn(&mut EGraph, &Match<'_>) -> Option<Id> + Send + Sync;

struct FnApplier {
    apply: Arc<ApplyFn>,
}

impl Applier<Onnx, OnnxAnalysis> for FnApplier {
    fn apply_one(
        &self,
        egraph: &mut EGraph,
        eclass: Id,
        subst: &Subst,
        _ast: Option<&PatternAst<Onnx>>,
        _rule: Symbol,
    ) -> Vec<Id> {
        let m = Match {
            root: eclass,
            subst,
        };
        match (self.apply)(egraph, &m) {
            Some(id) if egraph.union(id, eclass) => vec![id],
            _ => Vec::new(),
        }
    }
}

/// A searcher that matches any of several patterns (same variables), so one rule can list
/// the spellings of one form (operand orders, `Div` by c or `Mul` by 1/c).
struct AnyOf {
    patterns: Vec<Pattern<Onnx>>,
}

impl Searcher<Onnx, OnnxAnalysis> for AnyOf {
    fn search_eclass_with_limit(
        &self,
        egraph: &EGraph,
        eclass: Id,
        limit: usize,
    ) -> Option<SearchMatches<'_, Onnx>> {
        let mut substs = Vec::new();
        for p in &self.patterns {
            if let Some(m) =
                p.search_eclass_with_limit(egraph, eclass, limit.saturating_sub(substs.len()))
            {
                substs.extend(m.substs);
            }
        }
        (!substs.is_empty()).then_some(SearchMatches {
            eclass,
            substs,
            ast: None,
        })
    }

    fn search_with_limit(&self, egraph: &EGraph, limit: usize) -> Vec<SearchMatches<'_, Onnx>> {
        let mut by_class: std::collections::BTreeMap<Id, Vec<Subst>> =
            std::collections::BTreeMap::new();
        let mut total = 0;
        for p in &self.patterns {
            for m in p.search_with_limit(egraph, limit.saturating_sub(total)) {
                total += m.substs.len();
                by_class.entry(m.eclass).or_default().extend(m.substs);
            }
        }
        by_class
            .into_iter()
            .map(|(eclass, substs)| SearchMatches {
                eclass,
                substs,
                ast: None,
            })
            .collect()
    }

    fn vars(&self) -> Vec<Var> {
        self.patterns.first().map(|p| p.vars()).unwrap_or_default()
    }
}

impl fmt::Debug for AnyOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self.patterns.iter().map(|p| p.to_string()).collect();
        write!(f, "AnyOf({})", list.join(" | "))
    }
}

/// A named rule: any of `patterns` (s-expressions over ops, see [`crate::lang`]) searched
/// by egg, then `apply` checks the conditions and builds the replacement.
/// The `com.microsoft` domain, where ONNX Runtime's fused ops live.
pub const MS: &str = transfuse_ir::MS_DOMAIN;

/// ONNX `LayerNormalization`'s `epsilon` when the attribute is absent (also the default the
/// fused layer norms are given).
pub const LN_DEFAULT_EPSILON: f32 = 1e-5;

/// The tensor id of a constant leaf in class `id`.
pub fn const_tensor(eg: &EGraph, id: Id) -> Option<TensorId> {
    eg[id].nodes.iter().find_map(|n| match n {
        Onnx::Const(t) => Some(*t),
        _ => None,
    })
}

/// The default-domain (ONNX) e-nodes of class `id` with their children.
pub fn onnx_nodes(eg: &EGraph, id: Id) -> impl Iterator<Item = (&OpNode, &[Id])> {
    eg[id].nodes.iter().filter_map(|n| match n {
        Onnx::Op(d, c) if is_default_domain(d.domain.as_str()) => Some((d, c.as_slice())),
        _ => None,
    })
}

pub fn rule(
    name: &str,
    patterns: &[&str],
    apply: impl Fn(&mut EGraph, &Match<'_>) -> Option<Id> + Send + Sync + 'static,
) -> Result<Rewrite, RewriteError> {
    let invalid = |reason: String| RewriteError::InvalidRule {
        rule: name.to_string(),
        reason,
    };
    let parsed: Vec<Pattern<Onnx>> = patterns
        .iter()
        .map(|p| {
            p.parse::<Pattern<Onnx>>()
                .map_err(|e| invalid(format!("{p}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let applier = FnApplier {
        apply: Arc::new(apply),
    };
    match parsed.len() {
        0 => Err(invalid("no pattern".into())),
        1 => {
            let p = parsed
                .into_iter()
                .next()
                .ok_or_else(|| invalid("no pattern".into()))?;
            egg::Rewrite::new(name, p, applier).map_err(invalid)
        }
        _ => egg::Rewrite::new(name, AnyOf { patterns: parsed }, applier).map_err(invalid),
    }
}

// ----- queries -----

/// The analysis facts of a class.
pub fn data(eg: &EGraph, id: Id) -> &ClassData {
    &eg[id].data
}

/// True when `a` and `b` are the same e-class.
pub fn same(eg: &EGraph, a: Id, b: Id) -> bool {
    eg.find(a) == eg.find(b)
}

/// The number held by a one-element constant (any rank).
pub fn scalar(eg: &EGraph, id: Id) -> Option<f64> {
    data(eg, id).scalar()
}

/// True when `id` is a one-element constant within `rel` relative error of `expected`.
pub fn scalar_near(eg: &EGraph, id: Id, expected: f64, rel: f64) -> bool {
    scalar(eg, id).is_some_and(|v| (v - expected).abs() <= rel * expected.abs())
}

/// Shape of a class.
pub fn shape(eg: &EGraph, id: Id) -> Option<&Shape> {
    data(eg, id).shape.as_ref()
}

/// Element type of a class.
pub fn dtype(eg: &EGraph, id: Id) -> Option<DataType> {
    data(eg, id).dtype
}

/// True when the class is a floating-point tensor.
pub fn is_float(eg: &EGraph, id: Id) -> bool {
    dtype(eg, id).is_some_and(DataType::is_float)
}

/// True when the class's value depends on no graph input.
pub fn is_const(eg: &EGraph, id: Id) -> bool {
    data(eg, id).constant
}

/// The last dimension, when known.
pub fn last_dim(eg: &EGraph, id: Id) -> Option<SymDim> {
    shape(eg, id)?.last().cloned()
}

/// True when both classes have the same known shape.
pub fn same_shape(eg: &EGraph, a: Id, b: Id) -> bool {
    matches!((shape(eg, a), shape(eg, b)), (Some(x), Some(y)) if x == y)
}

/// True when `v` is a constant 1-D vector as long as `x`'s last dimension (a per-channel
/// scale or bias of `x`), of the same element type.
pub fn is_channel_vector(eg: &EGraph, v: Id, x: Id) -> bool {
    let (Some(s), Some(last)) = (shape(eg, v), last_dim(eg, x)) else {
        return false;
    };
    is_const(eg, v)
        && s.len() == 1
        && s[0] == last
        && last.as_known().is_some()
        && dtype(eg, v) == dtype(eg, x)
}

/// The operator e-nodes in class `id` with op type `op` in `domain` (`""` for ONNX) that have
/// at least one input (so `children[0]` exists; check the length before reading more).
pub fn ops<'a>(
    eg: &'a EGraph,
    id: Id,
    domain: &'a str,
    op: &'a str,
) -> impl Iterator<Item = (&'a OpNode, &'a [Id])> + 'a {
    eg[id].nodes.iter().filter_map(move |n| match n {
        Onnx::Op(d, c) if d.is(domain, op) && !c.is_empty() => Some((d, c.as_slice())),
        _ => None,
    })
}

/// The operands of the two-input ONNX `op` e-nodes in class `id` (`Add`, `Mul`, `Sub`, ...).
pub fn binary<'a>(eg: &'a EGraph, id: Id, op: &'a str) -> impl Iterator<Item = (Id, Id)> + 'a {
    ops(eg, id, "", op).filter_map(|(_, c)| match c {
        [a, b] => Some((*a, *b)),
        _ => None,
    })
}

/// True when class `id` contains some `MatMul` (the producer of a linear layer's output).
pub fn has_matmul(eg: &EGraph, id: Id) -> bool {
    ops(eg, id, "", "MatMul").next().is_some()
}

/// Adds an operator e-node.
pub fn add_op(eg: &mut EGraph, node: OpNode, children: Vec<Id>) -> Id {
    eg.add(Onnx::Op(node, children))
}

/// Adds an `f32` constant made by a rule (interned: the same values give the same class).
pub fn add_f32(eg: &mut EGraph, dims: Vec<i64>, values: &[f32]) -> Id {
    let t = eg.analysis.tensors.f32(dims, values);
    eg.add(Onnx::Const(t))
}

/// Adds a 1-D `int64` constant made by a rule (interned like [`add_f32`]): axes, indices,
/// shape pieces.
pub fn add_i64_vector(eg: &mut EGraph, values: &[i64]) -> Id {
    let len = i64::try_from(values.len()).unwrap_or(i64::MAX);
    let t = eg
        .analysis
        .tensors
        .intern(transfuse_ir::Tensor::from_i64("", vec![len], values));
    eg.add(Onnx::Const(t))
}

/// Adds the "omitted optional input" leaf.
pub fn absent(eg: &mut EGraph) -> Id {
    eg.add(Onnx::Absent)
}

/// Normalized reduction axes of a `Reduce*` e-node (attribute or constant input form).
pub fn reduce_axes(eg: &EGraph, node: &OpNode, children: &[Id]) -> Option<Vec<usize>> {
    let inputs: Vec<&ClassData> = children.iter().map(|&c| data(eg, c)).collect();
    let rank = inputs.first()?.rank()?;
    crate::infer::reduce_axes(node, &inputs, rank)
}

/// True when the `Reduce*` e-node reduces exactly the last axis and keeps dims.
pub fn reduces_last_axis_keepdims(eg: &EGraph, node: &OpNode, children: &[Id]) -> bool {
    let Some(rank) = children.first().and_then(|&c| data(eg, c).rank()) else {
        return false;
    };
    node.attr_int("keepdims").unwrap_or(1) != 0
        && rank > 0
        && reduce_axes(eg, node, children).is_some_and(|a| a == [rank - 1])
}

/// Every way class `t` is some class times a scalar constant: `Mul(a, c)`, `Mul(c, a)` and
/// `Div(a, c)` give `(a, c)`, `(a, c)` and `(a, 1/c)`.
pub fn scaled_terms(eg: &EGraph, t: Id) -> Vec<(Id, f64)> {
    let mut out = Vec::new();
    for n in &eg[t].nodes {
        let Onnx::Op(d, c) = n else { continue };
        if c.len() != 2 {
            continue;
        }
        if d.is_onnx("Mul") {
            if let Some(k) = scalar(eg, c[1]) {
                out.push((c[0], k));
            }
            if let Some(k) = scalar(eg, c[0]) {
                out.push((c[1], k));
            }
        } else if d.is_onnx("Div")
            && let Some(k) = scalar(eg, c[1])
            && k != 0.0
        {
            out.push((c[0], 1.0 / k));
        }
    }
    out
}

/// The factor `k` when class `t` is `x * k` (or `x / (1/k)`) for a scalar constant `k`.
pub fn scale_of(eg: &EGraph, t: Id, x: Id) -> Option<f64> {
    scaled_terms(eg, t)
        .into_iter()
        .find(|(a, _)| same(eg, *a, x))
        .map(|(_, k)| k)
}

/// True when `a` and `b` are within `rel` relative error.
pub fn near(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs()
}
