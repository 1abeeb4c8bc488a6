//! `MatMul` (numpy semantics) and `Gemm`.

use ndarray::{ArrayD, Ix2, IxDyn, LinalgScalar};

use crate::error::{OpError, OpResult};
use crate::linalg::{gemm, matmul};
use crate::registry::{BuildCtx, Inputs, Kernel, MAX_ONNX_OPSET, ONNX, Registry};
use crate::value::Value;

pub(crate) fn register(reg: &mut Registry) {
    reg.insert(ONNX, "MatMul", 1..=MAX_ONNX_OPSET, |_| Ok(Box::new(MatMul)));
    reg.insert(ONNX, "Gemm", 7..=MAX_ONNX_OPSET, build_gemm);
}

#[derive(Debug)]
struct MatMul;

impl Kernel for MatMul {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let (a, b) = (inputs.req(0, "A")?, inputs.req(1, "B")?);
        let out = match (a, b) {
            (Value::F32(x), Value::F32(y)) => Value::F32(matmul(x, y)?),
            (Value::F64(x), Value::F64(y)) => Value::F64(matmul(x, y)?),
            (Value::I64(x), Value::I64(y)) => Value::I64(matmul(x, y)?),
            (Value::I32(x), Value::I32(y)) => Value::I32(matmul(x, y)?),
            _ => {
                return Err(OpError::dtype(format!(
                    "MatMul of {} and {}",
                    a.dtype(),
                    b.dtype()
                )));
            }
        };
        Ok(vec![out])
    }
}

/// `Y = alpha · op(A) · op(B) + beta · C`, `op` an optional transpose, `C` broadcast to `[M, N]`.
#[derive(Debug)]
struct Gemm {
    alpha: f32,
    beta: f32,
    trans_a: bool,
    trans_b: bool,
}

fn build_gemm(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    Ok(Box::new(Gemm {
        alpha: ctx.float("alpha", 1.0)?,
        beta: ctx.float("beta", 1.0)?,
        trans_a: ctx.int("transA", 0)? != 0,
        trans_b: ctx.int("transB", 0)? != 0,
    }))
}

impl Kernel for Gemm {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let (a, b, c) = (inputs.req(0, "A")?, inputs.req(1, "B")?, inputs.get(2));
        let out = match (a, b) {
            (Value::F32(x), Value::F32(y)) => {
                Value::F32(self.apply(x, y, c, self.alpha, self.beta)?)
            }
            (Value::F64(x), Value::F64(y)) => {
                Value::F64(self.apply(x, y, c, f64::from(self.alpha), f64::from(self.beta))?)
            }
            _ => {
                return Err(OpError::dtype(format!(
                    "Gemm of {} and {}",
                    a.dtype(),
                    b.dtype()
                )));
            }
        };
        Ok(vec![out])
    }
}

impl Gemm {
    fn apply<T>(
        &self,
        a: &ArrayD<T>,
        b: &ArrayD<T>,
        c: Option<&Value>,
        alpha: T,
        beta: T,
    ) -> OpResult<ArrayD<T>>
    where
        T: LinalgScalar + Send + Sync + crate::value::ValueElem,
    {
        let a2 = a
            .view()
            .into_dimensionality::<Ix2>()
            .map_err(|_| OpError::shape("Gemm A must be 2-D"))?;
        let b2 = b
            .view()
            .into_dimensionality::<Ix2>()
            .map_err(|_| OpError::shape("Gemm B must be 2-D"))?;
        let a2 = if self.trans_a { a2.reversed_axes() } else { a2 };
        let b2 = if self.trans_b { b2.reversed_axes() } else { b2 };
        let (m, k) = a2.dim();
        let (k2, n) = b2.dim();
        if k != k2 {
            return Err(OpError::shape(format!(
                "Gemm inner dims differ: {:?} x {:?}",
                a2.dim(),
                b2.dim()
            )));
        }
        let (mut out, beta) = match c {
            Some(cv) => {
                let c = crate::value::typed::<T>(cv, "C")?;
                let full = crate::broadcast::view_as(c, &[m, n])?;
                (full.to_owned(), beta)
            }
            None => (ArrayD::zeros(IxDyn(&[m, n])), T::zero()),
        };
        let out2 = out
            .view_mut()
            .into_dimensionality::<Ix2>()
            .map_err(|e| OpError::shape(e.to_string()))?;
        gemm(alpha, a2, b2, beta, out2);
        Ok(out)
    }
}
