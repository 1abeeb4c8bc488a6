//! ONNX Runtime's GELU family (`com.microsoft`): `Gelu`, `FastGelu`, `BiasGelu`, `QuickGelu`.
//!
//! - `Gelu(X)`: the exact form `0.5·x·(1 + erf(x/√2))`.
//! - `FastGelu(X, [bias])`: the tanh form `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` of `X + bias`.
//! - `BiasGelu(A, B)`: the exact (erf) form of `A + B`.
//! - `QuickGelu(X)`: `x·sigmoid(alpha·x)`, `alpha` default 1.702.
//!
//! A bias must be 1-D with the length of the input's last dim, as ONNX Runtime requires.

use ndarray::{ArrayD, Axis};

use crate::broadcast::map_assign;
use crate::elem::Float;
use crate::error::{OpError, OpResult};
use crate::ops::unary::{gelu_erf, gelu_tanh, sigmoid};
use crate::registry::{BuildCtx, Inputs, Kernel, MS, Registry};
use crate::value::{Value, ValueElem, typed, typed_owned};

pub(crate) fn register(reg: &mut Registry) {
    reg.insert(MS, "Gelu", 1..=1, |_| {
        Ok(Box::new(GeluKernel { form: Form::Erf }))
    });
    reg.insert(MS, "BiasGelu", 1..=1, |_| {
        Ok(Box::new(GeluKernel {
            form: Form::BiasErf,
        }))
    });
    reg.insert(MS, "FastGelu", 1..=1, |_| {
        Ok(Box::new(GeluKernel { form: Form::Tanh }))
    });
    reg.insert(MS, "QuickGelu", 1..=1, build_quick_gelu);
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Form {
    /// `Gelu`: no bias input.
    Erf,
    /// `BiasGelu`: required bias.
    BiasErf,
    /// `FastGelu`: optional bias.
    Tanh,
    /// `QuickGelu` with its alpha.
    Quick(f32),
}

#[derive(Debug)]
struct GeluKernel {
    form: Form,
}

fn build_quick_gelu(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    Ok(Box::new(GeluKernel {
        form: Form::Quick(ctx.float("alpha", 1.702)?),
    }))
}

impl Kernel for GeluKernel {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        float_dispatch!(inputs.req(0, "X")?, T => self.apply::<T>(inputs), "{:?} GELU needs float input", self.form)
    }
}

impl GeluKernel {
    fn apply<T: Float + ValueElem>(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let bias: Option<Vec<T>> = match (self.form, inputs.get(1)) {
            (Form::BiasErf, None) => {
                return Err(OpError::MissingInput {
                    index: 1,
                    name: "B",
                });
            }
            (Form::BiasErf | Form::Tanh, Some(b)) => {
                Some(typed::<T>(b, "bias")?.iter().copied().collect())
            }
            _ => None,
        };
        let mut x: ArrayD<T> = typed_owned(inputs.take(0, "X")?, "X")?;
        if let Some(bias) = bias {
            add_bias(&mut x, &bias)?;
        }
        match self.form {
            Form::Erf | Form::BiasErf => map_assign(&mut x, gelu_erf),
            Form::Tanh => map_assign(&mut x, gelu_tanh),
            Form::Quick(alpha) => {
                let alpha = T::of_f32(alpha);
                map_assign(&mut x, |v| v * sigmoid(alpha * v));
            }
        }
        Ok(vec![T::wrap(x)])
    }
}

/// `x += bias` along the last axis; `bias` must have exactly the last dim's length.
pub(crate) fn add_bias<T: Float>(x: &mut ArrayD<T>, bias: &[T]) -> OpResult<()> {
    let last = x
        .ndim()
        .checked_sub(1)
        .ok_or_else(|| OpError::shape("input must have at least one dim"))?;
    if x.shape().get(last) != Some(&bias.len()) {
        return Err(OpError::shape(format!(
            "bias of length {} for input {:?}",
            bias.len(),
            x.shape()
        )));
    }
    for mut lane in x.lanes_mut(Axis(last)) {
        for (v, &b) in lane.iter_mut().zip(bias) {
            *v = *v + b;
        }
    }
    Ok(())
}
