//! The cost of each e-node for extraction.

use std::collections::HashMap;

use crate::lang::{INTERNAL_DOMAIN, Onnx};

/// Own cost of an e-node: leaves are free, original nodes cost 1, new nodes of a fused op
/// type 0.5 (so a fusion wins over the nodes it replaces), other new nodes slightly more
/// than 1 (so rewritten spellings never displace the original ones), and internal ops or
/// new nodes of disabled fusions cannot be chosen.
pub(crate) struct CostModel<'a> {
    /// The original nodes by canonical e-node (see [`crate::lower::canonical_originals`]).
    pub(crate) original: &'a HashMap<Onnx, usize>,
    /// `(domain, op)` pairs the enabled fusions emit.
    pub(crate) allowed: Vec<(&'static str, &'static str)>,
    /// `(domain, op)` pairs any fusion emits.
    pub(crate) fused: Vec<(&'static str, &'static str)>,
}

impl CostModel<'_> {
    /// The cost of `n` alone (children are paid by the extractor).
    pub(crate) fn cost(&self, n: &Onnx) -> f64 {
        match n {
            Onnx::Input(_) | Onnx::Const(_) | Onnx::Absent | Onnx::Proj(..) | Onnx::Root(_) => 0.0,
            Onnx::Opaque(..) => 1.0,
            Onnx::Op(d, _) => {
                if d.domain.as_str() == INTERNAL_DOMAIN {
                    return f64::INFINITY;
                }
                if self.original.contains_key(n) {
                    return 1.0;
                }
                let key = |list: &[(&str, &str)]| list.iter().any(|(dom, op)| d.is(dom, op));
                if key(&self.fused) {
                    if key(&self.allowed) {
                        0.5
                    } else {
                        f64::INFINITY
                    }
                } else {
                    1.001
                }
            }
        }
    }
}
