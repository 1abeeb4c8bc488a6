//! The e-graph language: ONNX operators with their attributes as e-node data.
//!
//! Every ONNX node becomes an [`Onnx::Op`] e-node whose data is its op type, domain, output
//! count and canonicalized attributes ([`OpNode`]), and whose children are its inputs.
//! Values that come from outside the computation are leaves: graph inputs by name
//! ([`Onnx::Input`]) and constant tensors by id ([`Onnx::Const`], an index into the
//! [`TensorTable`](crate::TensorTable); tensor data never enters the e-graph).
//! A node with several outputs is one e-class (a tuple); each output is an
//! [`Onnx::Proj`] of it. One [`Onnx::Root`] joins all graph outputs.
//!
//! Patterns: `"(Mul ?x ?c)"` parses to an op e-node with *any* attributes (a wildcard, see
//! [`OpNode::attrs`]); a domain is written as a prefix, `ms:Gelu` for `com.microsoft` and
//! `internal:Name` for [`INTERNAL_DOMAIN`]. Wildcards match only; appliers build real nodes
//! with [`OpNode::new`].

use std::fmt;
use std::sync::Arc;

use egg::{Id, Language, Symbol};

/// Domain of canonical intermediate ops that rules may introduce to name a recognized
/// structure (for example a head split). They are never extracted: a mapping rule must put
/// an ONNX or ONNX Runtime node in the same e-class for the result to be used.
pub const INTERNAL_DOMAIN: &str = "transfuse.internal";

/// Index of a tensor in the [`TensorTable`](crate::TensorTable).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TensorId(pub u32);

/// An `f32` compared and hashed by its bits (so `Onnx` can be `Eq + Ord + Hash`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct F32Bits(pub u32);

impl F32Bits {
    /// Wraps a float.
    pub fn new(v: f32) -> F32Bits {
        F32Bits(v.to_bits())
    }
    /// The float.
    pub fn get(self) -> f32 {
        f32::from_bits(self.0)
    }
}

impl fmt::Debug for F32Bits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.get())
    }
}

/// A canonical attribute value. Tensor-valued attributes live in the tensor table.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[allow(missing_docs)]
pub enum AttrVal {
    Int(i64),
    Float(F32Bits),
    Str(Arc<[u8]>),
    Ints(Arc<[i64]>),
    Floats(Arc<[F32Bits]>),
    Strs(Arc<[Arc<[u8]>]>),
    Tensor(TensorId),
}

/// Attributes sorted by name (the canonical form: file order does not matter).
pub type Attrs = Arc<[(Symbol, AttrVal)]>;

/// The data of an operator e-node.
///
/// Field order matters: the derived `Ord` sorts by `(op, domain)` first, which egg relies on
/// to find matching nodes in large e-classes by binary search.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpNode {
    /// Op type (`MatMul`).
    pub op: Symbol,
    /// Domain, `""` for ONNX.
    pub domain: Symbol,
    /// Attributes sorted by name; `None` only in patterns, where it matches any attributes
    /// and any output count.
    pub attrs: Option<Attrs>,
    /// Number of outputs. With 1 the e-class of the node is its value; with more, the e-class
    /// is a tuple and values are [`Onnx::Proj`]ections.
    pub outputs: u32,
}

impl OpNode {
    /// A single-output node with no attributes.
    pub fn new(op: &str, domain: &str) -> OpNode {
        OpNode {
            op: Symbol::from(op),
            domain: Symbol::from(domain),
            attrs: Some(Arc::from(Vec::new())),
            outputs: 1,
        }
    }

    /// Sets the number of outputs (builder style).
    pub fn with_outputs(mut self, outputs: u32) -> OpNode {
        self.outputs = outputs;
        self
    }

    /// Adds or replaces an attribute (builder style), keeping the canonical order.
    pub fn with_attr(mut self, name: &str, value: AttrVal) -> OpNode {
        let name = Symbol::from(name);
        let mut list: Vec<(Symbol, AttrVal)> = self
            .attrs
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .filter(|(n, _)| *n != name)
            .cloned()
            .collect();
        list.push((name, value));
        list.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        self.attrs = Some(Arc::from(list));
        self
    }

    /// The attribute called `name`.
    pub fn attr(&self, name: &str) -> Option<&AttrVal> {
        self.attrs
            .as_deref()?
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, v)| v)
    }

    /// An integer attribute.
    pub fn attr_int(&self, name: &str) -> Option<i64> {
        match self.attr(name)? {
            AttrVal::Int(v) => Some(*v),
            _ => None,
        }
    }

    /// A float attribute.
    pub fn attr_float(&self, name: &str) -> Option<f32> {
        match self.attr(name)? {
            AttrVal::Float(v) => Some(v.get()),
            _ => None,
        }
    }

    /// An integer-list attribute.
    pub fn attr_ints(&self, name: &str) -> Option<&[i64]> {
        match self.attr(name)? {
            AttrVal::Ints(v) => Some(v),
            _ => None,
        }
    }

    /// A string attribute (lossy UTF-8).
    pub fn attr_str(&self, name: &str) -> Option<String> {
        match self.attr(name)? {
            AttrVal::Str(v) => Some(String::from_utf8_lossy(v).into_owned()),
            _ => None,
        }
    }

    /// True for `op` in the ONNX domain.
    pub fn is_onnx(&self, op: &str) -> bool {
        self.op.as_str() == op && is_default_domain(self.domain.as_str())
    }

    /// True for `op` in `domain` (`""` and `ai.onnx` are the same domain).
    pub fn is(&self, domain: &str, op: &str) -> bool {
        if domain.is_empty() {
            self.is_onnx(op)
        } else {
            self.op.as_str() == op && self.domain.as_str() == domain
        }
    }
}

/// An e-node.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Onnx {
    /// A graph input, by name.
    Input(Symbol),
    /// A constant tensor (initializer, `Constant` node or tensor made by a rule), by id.
    Const(TensorId),
    /// An omitted optional input (`""` in ONNX).
    Absent,
    /// Output `index` of a multi-output node (the child is the node's tuple e-class).
    Proj(u32, [Id; 1]),
    /// An operator application; children are its inputs in order.
    Op(OpNode, Vec<Id>),
    /// A node the engine must not look into (it carries subgraphs or attributes that cannot be
    /// compared), by its index in the original graph. Children: its inputs, then the outer
    /// values its subgraphs read. Passed through unchanged.
    Opaque(u32, Vec<Id>),
    /// Joins all graph outputs, in order.
    Root(Vec<Id>),
}

/// What egg groups e-nodes by when matching: the variant, plus op and domain for operators.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum OnnxKind {
    Input,
    Const,
    Absent,
    Proj(u32),
    Op(Symbol, Symbol),
    Opaque(u32),
    Root,
}

impl Onnx {
    /// The operator data, for [`Onnx::Op`] nodes.
    pub fn as_op(&self) -> Option<(&OpNode, &[Id])> {
        match self {
            Onnx::Op(n, c) => Some((n, c)),
            _ => None,
        }
    }
}

impl Language for Onnx {
    type Discriminant = OnnxKind;

    fn discriminant(&self) -> OnnxKind {
        match self {
            Onnx::Input(_) => OnnxKind::Input,
            Onnx::Const(_) => OnnxKind::Const,
            Onnx::Absent => OnnxKind::Absent,
            Onnx::Proj(i, _) => OnnxKind::Proj(*i),
            Onnx::Op(n, _) => OnnxKind::Op(n.op, n.domain),
            Onnx::Opaque(i, _) => OnnxKind::Opaque(*i),
            Onnx::Root(_) => OnnxKind::Root,
        }
    }

    /// `self` is the pattern side: an op with `attrs == None` matches any attributes.
    fn matches(&self, other: &Self) -> bool {
        match (self, other) {
            (Onnx::Op(a, ca), Onnx::Op(b, cb)) => {
                a.op == b.op
                    && a.domain == b.domain
                    && ca.len() == cb.len()
                    && (a.attrs.is_none() || (a.attrs == b.attrs && a.outputs == b.outputs))
            }
            (Onnx::Input(a), Onnx::Input(b)) => a == b,
            (Onnx::Const(a), Onnx::Const(b)) => a == b,
            (Onnx::Absent, Onnx::Absent) => true,
            (Onnx::Proj(a, _), Onnx::Proj(b, _)) => a == b,
            (Onnx::Opaque(a, ca), Onnx::Opaque(b, cb)) => a == b && ca.len() == cb.len(),
            (Onnx::Root(ca), Onnx::Root(cb)) => ca.len() == cb.len(),
            _ => false,
        }
    }

    fn children(&self) -> &[Id] {
        match self {
            Onnx::Input(_) | Onnx::Const(_) | Onnx::Absent => &[],
            Onnx::Proj(_, c) => c,
            Onnx::Op(_, c) | Onnx::Opaque(_, c) | Onnx::Root(c) => c,
        }
    }

    fn children_mut(&mut self) -> &mut [Id] {
        match self {
            Onnx::Input(_) | Onnx::Const(_) | Onnx::Absent => &mut [],
            Onnx::Proj(_, c) => c,
            Onnx::Op(_, c) | Onnx::Opaque(_, c) | Onnx::Root(c) => c,
        }
    }
}

/// True for the default ONNX domain, which models spell `""` or `"ai.onnx"`.
pub(crate) fn is_default_domain(domain: &str) -> bool {
    domain.is_empty() || domain == "ai.onnx"
}

/// Short domain prefixes used in patterns and displays.
fn domain_prefix(domain: &str) -> Option<&'static str> {
    match domain {
        d if is_default_domain(d) => Some(""),
        transfuse_ir::MS_DOMAIN => Some("ms:"),
        INTERNAL_DOMAIN => Some("internal:"),
        _ => None,
    }
}

impl fmt::Display for Onnx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Onnx::Input(s) => write!(f, "input:{s}"),
            Onnx::Const(t) => write!(f, "const:{}", t.0),
            Onnx::Absent => f.write_str("absent"),
            Onnx::Proj(i, _) => write!(f, "proj.{i}"),
            Onnx::Op(n, _) => match domain_prefix(n.domain.as_str()) {
                Some(p) => write!(f, "{p}{}", n.op),
                None => write!(f, "{}:{}", n.domain, n.op),
            },
            Onnx::Opaque(i, _) => write!(f, "opaque.{i}"),
            Onnx::Root(_) => f.write_str("root"),
        }
    }
}

/// Why a pattern operator did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse pattern operator '{0}'")]
pub struct ParseOpError(pub String);

impl egg::FromOp for Onnx {
    type Error = ParseOpError;

    /// Parses pattern operators: `Mul`, `ms:Gelu`, `internal:HeadSplit`, `proj.3`, `root`,
    /// `absent`. Operators parse as wildcards over attributes.
    fn from_op(op: &str, children: Vec<Id>) -> Result<Self, Self::Error> {
        let bad = || ParseOpError(op.to_string());
        if let Some(index) = op.strip_prefix("proj.") {
            let index: u32 = index.parse().map_err(|_| bad())?;
            return match children.as_slice() {
                [c] => Ok(Onnx::Proj(index, [*c])),
                _ => Err(bad()),
            };
        }
        match op {
            "root" => return Ok(Onnx::Root(children)),
            "absent" if children.is_empty() => return Ok(Onnx::Absent),
            _ => {}
        }
        let (domain, name) = match op.split_once(':') {
            Some(("ms", name)) => (transfuse_ir::MS_DOMAIN, name),
            Some(("internal", name)) => (INTERNAL_DOMAIN, name),
            Some(_) => return Err(bad()),
            None => ("", op),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(bad());
        }
        let node = OpNode {
            op: Symbol::from(name),
            domain: Symbol::from(domain),
            attrs: None,
            outputs: 1,
        };
        Ok(Onnx::Op(node, children))
    }
}
