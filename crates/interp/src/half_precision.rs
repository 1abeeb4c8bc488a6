//! f16 execution: kernels compute in f32, each op's output is rounded to f16.
//!
//! This is the storage semantics of ONNX Runtime's fp16 kernels on CPU and CUDA: values
//! between ops are f16, arithmetic inside an op (GEMM accumulation, normalization
//! statistics, softmax sums) is f32. Every kernel but `Cast`/`CastLike` is wrapped: when a
//! node receives any f16 input, its f16 inputs are widened to f32 (exactly), the f32 kernel
//! runs, and its f32 outputs are rounded to nearest even f16, except the outputs whose type
//! the op schema fixes to f32 independently of the input type (the `U` statistics of the
//! layer norms). Ops that only move data are exact under this scheme.

use half::f16;
use ndarray::ArrayD;

use crate::error::OpResult;
use crate::registry::{Inputs, Kernel, MS, ONNX};
use crate::value::Value;

/// `kernel` for `op_type` of `domain`, run in f32 when given f16 inputs.
pub(crate) fn widening(domain: &str, op_type: &str, kernel: Box<dyn Kernel>) -> Box<dyn Kernel> {
    if domain == ONNX && matches!(op_type, "Cast" | "CastLike") {
        return kernel;
    }
    Box::new(Widening {
        f32_outputs: f32_outputs(domain, op_type),
        inner: kernel,
    })
}

/// Output positions typed `U` (float) whatever the input type `T` is.
fn f32_outputs(domain: &str, op_type: &str) -> &'static [usize] {
    match (domain, op_type) {
        (ONNX | MS, "LayerNormalization") | (MS, "SkipLayerNormalization") => &[1, 2],
        (ONNX | MS, "SimplifiedLayerNormalization") | (MS, "SkipSimplifiedLayerNormalization") => {
            &[1]
        }
        _ => &[],
    }
}

#[derive(Debug)]
struct Widening {
    inner: Box<dyn Kernel>,
    f32_outputs: &'static [usize],
}

impl Kernel for Widening {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        if !inputs.widen_f16(widen) {
            return self.inner.run(inputs);
        }
        let outputs = self.inner.run(inputs)?;
        Ok(outputs
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::F32(a) if !self.f32_outputs.contains(&i) => Value::F16(narrow(&a)),
                other => other,
            })
            .collect())
    }
}

/// f16 to f32, exact.
pub(crate) fn widen(a: &ArrayD<f16>) -> ArrayD<f32> {
    a.mapv(f16::to_f32)
}

/// f32 to f16, rounded to nearest even; magnitudes past 65504 become infinities.
pub(crate) fn narrow(a: &ArrayD<f32>) -> ArrayD<f16> {
    a.mapv(f16::from_f32)
}
