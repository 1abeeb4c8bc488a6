//! The e-class analysis: element type, symbolic shape, small constant values and
//! "every element equals c" facts.
//!
//! Rule conditions read these facts (never the syntax of a match), so they stay right when a
//! class gains members later. Facts are computed per e-node by [`crate::infer`] and merged
//! when classes merge: a known fact wins over an unknown one; two different known facts about
//! one class (which only a wrong rule could cause) keep the first.

use std::collections::HashMap;
use std::sync::Arc;

use egg::{Analysis, DidMerge, Id, Symbol};
use transfuse_ir::DataType;

use crate::lang::{Onnx, TensorId};
use crate::symbolic::{ConstValue, Scalar, Shape, SymDim};
use crate::tensors::TensorTable;

/// The e-graph type of this crate.
pub type EGraph = egg::EGraph<Onnx, OnnxAnalysis>;

/// Type facts of one value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ValueFacts {
    /// Element type.
    pub dtype: Option<DataType>,
    /// Shape (rank known, each dim a [`SymDim`]).
    pub shape: Option<Shape>,
}

/// What the analysis knows about an e-class.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClassData {
    /// Element type.
    pub dtype: Option<DataType>,
    /// Shape.
    pub shape: Option<Shape>,
    /// The value, for small constants (scalars, shape vectors), possibly symbolic.
    pub value: Option<Arc<ConstValue>>,
    /// Every element equals this (also known for large or shape-dependent tensors, for
    /// example `Expand(ConstantOfShape(...))`).
    pub uniform: Option<Scalar>,
    /// True when the value depends on no graph input (weights and their arithmetic).
    pub constant: bool,
    /// For a multi-output node's tuple class: facts of each output.
    pub outputs: Option<Arc<[ValueFacts]>>,
}

impl ClassData {
    /// Rank, when known.
    pub fn rank(&self) -> Option<usize> {
        self.shape.as_ref().map(Vec::len)
    }

    /// The single element of a one-element constant, as a number.
    pub fn scalar(&self) -> Option<f64> {
        self.value.as_ref()?.single()?.as_f64()
    }
}

/// Analysis state: the tensor table and the types of graph inputs.
#[derive(Debug, Default)]
pub struct OnnxAnalysis {
    /// Every tensor that `Const` leaves refer to.
    pub tensors: TensorTable,
    /// Declared types of graph inputs (dims become symbols named after the graph's
    /// `dim_param`s).
    pub inputs: HashMap<Symbol, ValueFacts>,
    /// The model's ONNX (default domain) opset, when known: rules that emit ops whose
    /// signature changed across opsets (`Unsqueeze` axes) check it.
    pub onnx_opset: Option<i64>,
}

impl OnnxAnalysis {
    /// Facts of a constant leaf.
    fn const_data(&self, id: TensorId) -> ClassData {
        let Some(t) = self.tensors.tensor(id) else {
            return ClassData::default();
        };
        let shape: Shape = t.dims.iter().map(|&d| SymDim::known(d)).collect();
        let value = crate::infer::small_tensor_value(t).map(Arc::new);
        let uniform = match &value {
            Some(v) => v.uniform(),
            None => crate::infer::large_tensor_uniform(t),
        };
        ClassData {
            dtype: Some(t.dtype),
            shape: Some(shape),
            value,
            uniform,
            constant: true,
            outputs: None,
        }
    }
}

fn merge_option<T: PartialEq>(a: &mut Option<T>, b: Option<T>) -> (bool, bool) {
    match (a.as_ref(), b) {
        (None, None) => (false, false),
        (None, Some(b)) => {
            *a = Some(b);
            (true, false)
        }
        (Some(_), None) => (false, true),
        (Some(x), Some(y)) => (false, *x != y),
    }
}

impl Analysis<Onnx> for OnnxAnalysis {
    type Data = ClassData;

    fn make(egraph: &mut EGraph, enode: &Onnx, id: Id) -> ClassData {
        match enode {
            Onnx::Input(name) => {
                let facts = egraph
                    .analysis
                    .inputs
                    .get(name)
                    .cloned()
                    .unwrap_or_default();
                ClassData {
                    dtype: facts.dtype,
                    shape: facts.shape,
                    ..ClassData::default()
                }
            }
            Onnx::Const(t) => egraph.analysis.const_data(*t),
            Onnx::Absent => ClassData {
                constant: true,
                ..ClassData::default()
            },
            Onnx::Proj(index, [tuple]) => {
                let data = &egraph[*tuple].data;
                let facts = data
                    .outputs
                    .as_ref()
                    .and_then(|o| o.get(*index as usize).cloned())
                    .unwrap_or_default();
                ClassData {
                    dtype: facts.dtype,
                    shape: facts.shape,
                    constant: data.constant,
                    ..ClassData::default()
                }
            }
            Onnx::Op(node, children) => {
                let inputs: Vec<&ClassData> = children.iter().map(|c| &egraph[*c].data).collect();
                let mut data = crate::infer::infer(node, &inputs, &egraph.analysis.tensors);
                crate::infer::name_unknowns(&mut data, usize::from(id));
                data
            }
            Onnx::Opaque(..) | Onnx::Root(_) => ClassData::default(),
        }
    }

    fn merge(&mut self, a: &mut ClassData, b: ClassData) -> DidMerge {
        let (a1, b1) = merge_option(&mut a.dtype, b.dtype);
        let (a2, b2) = merge_option(&mut a.shape, b.shape);
        let (a3, b3) = merge_option(&mut a.value, b.value);
        let (a4, b4) = merge_option(&mut a.uniform, b.uniform);
        let (a5, b5) = merge_option(&mut a.outputs, b.outputs);
        let a6 = !a.constant && b.constant;
        let b6 = a.constant && !b.constant;
        a.constant |= b.constant;
        DidMerge(
            a1 || a2 || a3 || a4 || a5 || a6,
            b1 || b2 || b3 || b4 || b5 || b6,
        )
    }
}
