//! `Conv` (im2col + GEMM) and `ConvTranspose` (GEMM + col2im), any number of spatial dims,
//! with groups, strides, dilations, explicit pads and `auto_pad`.

use ndarray::{ArrayD, ArrayView2, Axis, IxDyn, LinalgScalar, s};

use crate::elem::Float;
use crate::error::{OpError, OpResult};
use crate::linalg::gemm;
use crate::ops::to_usize;
use crate::registry::{BuildCtx, Inputs, Kernel, MAX_ONNX_OPSET, ONNX, Registry};
use crate::value::{Value, ValueElem, typed};

pub(crate) fn register(reg: &mut Registry) {
    reg.insert(ONNX, "Conv", 1..=MAX_ONNX_OPSET, build_conv);
    reg.insert(ONNX, "ConvTranspose", 1..=MAX_ONNX_OPSET, build_conv);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AutoPad {
    NotSet,
    SameUpper,
    SameLower,
    Valid,
}

/// The attributes shared by `Conv` and `ConvTranspose`.
#[derive(Debug)]
struct ConvAttributes {
    transposed: bool,
    auto_pad: AutoPad,
    dilations: Option<Vec<i64>>,
    group: usize,
    kernel_shape: Option<Vec<i64>>,
    pads: Option<Vec<i64>>,
    strides: Option<Vec<i64>>,
    /// `ConvTranspose` only.
    output_padding: Option<Vec<i64>>,
    /// `ConvTranspose` only.
    output_shape: Option<Vec<i64>>,
}

fn build_conv(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    let auto_pad = match ctx.string("auto_pad", "NOTSET")?.as_str() {
        "NOTSET" => AutoPad::NotSet,
        "SAME_UPPER" => AutoPad::SameUpper,
        "SAME_LOWER" => AutoPad::SameLower,
        "VALID" => AutoPad::Valid,
        other => {
            return Err(OpError::attr(
                "auto_pad",
                format!("unknown value '{other}'"),
            ));
        }
    };
    let group = to_usize(ctx.int("group", 1)?, "group")?;
    if group == 0 {
        return Err(OpError::attr("group", "must be positive"));
    }
    Ok(Box::new(ConvAttributes {
        transposed: ctx.node.op_type == "ConvTranspose",
        auto_pad,
        dilations: ctx.ints("dilations")?,
        group,
        kernel_shape: ctx.ints("kernel_shape")?,
        pads: ctx.ints("pads")?,
        strides: ctx.ints("strides")?,
        output_padding: ctx.ints("output_padding")?,
        output_shape: ctx.ints("output_shape")?,
    }))
}

impl Kernel for ConvAttributes {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let x = inputs.req(0, "X")?;
        let w = inputs.req(1, "W")?;
        let b = inputs.get(2);
        let out = match x {
            Value::F32(xa) => Value::F32(self.dispatch(xa, typed::<f32>(w, "W")?, b)?),
            Value::F64(xa) => Value::F64(self.dispatch(xa, typed::<f64>(w, "W")?, b)?),
            other => {
                return Err(OpError::dtype(format!(
                    "Conv needs float input, got {}",
                    other.dtype()
                )));
            }
        };
        Ok(vec![out])
    }
}

/// Per-axis values of a list attribute, or `default` for each axis when absent.
fn per_axis(
    values: &Option<Vec<i64>>,
    n: usize,
    default: usize,
    name: &str,
) -> OpResult<Vec<usize>> {
    match values {
        None => Ok(vec![default; n]),
        Some(v) if v.len() == n => v.iter().map(|&x| to_usize(x, name)).collect(),
        Some(v) => Err(OpError::attr(
            name,
            format!("has {} values for {n} spatial axes", v.len()),
        )),
    }
}

/// Resolved geometry of one convolution.
#[derive(Debug)]
struct Geometry {
    kernel: Vec<usize>,
    strides: Vec<usize>,
    dilations: Vec<usize>,
    pads_begin: Vec<usize>,
    input: Vec<usize>,
    output: Vec<usize>,
}

impl ConvAttributes {
    fn dispatch<T>(&self, x: &ArrayD<T>, w: &ArrayD<T>, b: Option<&Value>) -> OpResult<ArrayD<T>>
    where
        T: Float + LinalgScalar + ValueElem,
    {
        if x.ndim() < 3 || w.ndim() != x.ndim() {
            return Err(OpError::shape(format!(
                "Conv X {:?} and W {:?} ranks",
                x.shape(),
                w.shape()
            )));
        }
        if w.shape()[2..].contains(&0) {
            return Err(OpError::shape(format!(
                "W {:?} has an empty kernel dim",
                w.shape()
            )));
        }
        let bias = b.map(|v| typed::<T>(v, "B")).transpose()?;
        if self.transposed {
            self.conv_transpose(x, w, bias)
        } else {
            self.conv(x, w, bias)
        }
    }

    fn conv<T>(&self, x: &ArrayD<T>, w: &ArrayD<T>, bias: Option<&ArrayD<T>>) -> OpResult<ArrayD<T>>
    where
        T: Float + LinalgScalar,
    {
        let spatial = x.ndim() - 2;
        let (n, c) = (x.shape()[0], x.shape()[1]);
        let m = w.shape()[0];
        let g = self.group;
        if !c.is_multiple_of(g) || !m.is_multiple_of(g) || w.shape()[1] * g != c {
            return Err(OpError::shape(format!(
                "Conv channels: X {:?}, W {:?}, group {g}",
                x.shape(),
                w.shape()
            )));
        }
        let kernel = w.shape()[2..].to_vec();
        if let Some(k) = &self.kernel_shape
            && per_axis(&Some(k.clone()), spatial, 1, "kernel_shape")? != kernel
        {
            return Err(OpError::attr(
                "kernel_shape",
                "differs from W's spatial dims",
            ));
        }
        let strides = per_axis(&self.strides, spatial, 1, "strides")?;
        let dilations = per_axis(&self.dilations, spatial, 1, "dilations")?;
        if strides.contains(&0) || dilations.contains(&0) {
            return Err(OpError::attr(
                "strides",
                "strides and dilations must be positive",
            ));
        }
        let input: Vec<usize> = x.shape()[2..].to_vec();
        let mut pads_begin = vec![0; spatial];
        let mut output = vec![0; spatial];
        let explicit = per_axis(&self.pads, 2 * spatial, 0, "pads")?;
        for i in 0..spatial {
            let span = (kernel[i] - 1) * dilations[i] + 1;
            let (o, pb) = match self.auto_pad {
                AutoPad::NotSet => {
                    let padded = input[i] + explicit[i] + explicit[i + spatial];
                    if padded < span {
                        return Err(OpError::shape(format!(
                            "Conv kernel {span} larger than padded input {padded}"
                        )));
                    }
                    ((padded - span) / strides[i] + 1, explicit[i])
                }
                AutoPad::Valid => {
                    if input[i] < span {
                        return Err(OpError::shape(format!(
                            "Conv kernel {span} larger than input {}",
                            input[i]
                        )));
                    }
                    ((input[i] - span) / strides[i] + 1, 0)
                }
                AutoPad::SameUpper | AutoPad::SameLower => {
                    let o = input[i].div_ceil(strides[i]);
                    let total =
                        ((o.saturating_sub(1)) * strides[i] + span).saturating_sub(input[i]);
                    let pb = if self.auto_pad == AutoPad::SameUpper {
                        total / 2
                    } else {
                        total - total / 2
                    };
                    (o, pb)
                }
            };
            output[i] = o;
            pads_begin[i] = pb;
        }
        crate::ops::check_size(&[n, m, output.iter().product()])?;
        crate::ops::check_size(&[c / g, kernel.iter().product(), output.iter().product()])?;
        let geo = Geometry {
            kernel,
            strides,
            dilations,
            pads_begin,
            input,
            output,
        };
        let k_count: usize = geo.kernel.iter().product();
        let o_count: usize = geo.output.iter().product();
        let i_count: usize = geo.input.iter().product();
        let (cg, mg) = (c / g, m / g);

        let x_std = x.as_standard_layout();
        let x3 = x_std
            .view()
            .into_shape_with_order((n, c, i_count))
            .map_err(|e| OpError::shape(e.to_string()))?;
        let w_std = w.as_standard_layout();
        let w2 = w_std
            .view()
            .into_shape_with_order((m, cg * k_count))
            .map_err(|e| OpError::shape(e.to_string()))?;
        let mut out_shape = vec![n, m];
        out_shape.extend(&geo.output);
        let mut out = ArrayD::<T>::zeros(IxDyn(&out_shape));
        {
            let mut out3 = out
                .view_mut()
                .into_shape_with_order((n, m, o_count))
                .map_err(|e| OpError::shape(e.to_string()))?;
            let tables = geo.index_tables();
            let mut cols = ndarray::Array2::<T>::zeros((cg * k_count, o_count));
            for b in 0..n {
                for gi in 0..g {
                    let xg = x3.slice(s![b, gi * cg..(gi + 1) * cg, ..]);
                    im2col(&xg, &geo, &tables, &mut cols);
                    let wg = w2.slice(s![gi * mg..(gi + 1) * mg, ..]);
                    let og = out3.slice_mut(s![b, gi * mg..(gi + 1) * mg, ..]);
                    gemm(T::one(), wg, cols.view(), T::zero(), og);
                }
            }
        }
        add_channel_bias(&mut out, bias, m)?;
        Ok(out)
    }

    fn conv_transpose<T>(
        &self,
        x: &ArrayD<T>,
        w: &ArrayD<T>,
        bias: Option<&ArrayD<T>>,
    ) -> OpResult<ArrayD<T>>
    where
        T: Float + LinalgScalar,
    {
        let spatial = x.ndim() - 2;
        let (n, c) = (x.shape()[0], x.shape()[1]);
        let g = self.group;
        if w.shape()[0] != c || c % g != 0 {
            return Err(OpError::shape(format!(
                "ConvTranspose channels: X {:?}, W {:?}, group {g}",
                x.shape(),
                w.shape()
            )));
        }
        let mg = w.shape()[1];
        let m = mg * g;
        let cg = c / g;
        let kernel = w.shape()[2..].to_vec();
        if let Some(k) = &self.kernel_shape
            && per_axis(&Some(k.clone()), spatial, 1, "kernel_shape")? != kernel
        {
            return Err(OpError::attr(
                "kernel_shape",
                "differs from W's spatial dims",
            ));
        }
        let strides = per_axis(&self.strides, spatial, 1, "strides")?;
        let dilations = per_axis(&self.dilations, spatial, 1, "dilations")?;
        if strides.contains(&0) || dilations.contains(&0) {
            return Err(OpError::attr(
                "strides",
                "strides and dilations must be positive",
            ));
        }
        let output_padding = per_axis(&self.output_padding, spatial, 0, "output_padding")?;
        let input: Vec<usize> = x.shape()[2..].to_vec();
        // `output_shape` may list only the spatial dims or all of them.
        let requested: Option<Vec<usize>> = match &self.output_shape {
            None => None,
            Some(v) => {
                let tail = if v.len() == spatial + 2 {
                    &v[2..]
                } else {
                    &v[..]
                };
                Some(per_axis(&Some(tail.to_vec()), spatial, 0, "output_shape")?)
            }
        };
        let explicit = per_axis(&self.pads, 2 * spatial, 0, "pads")?;
        let mut pads_begin = vec![0i64; spatial];
        let mut output = vec![0usize; spatial];
        for i in 0..spatial {
            let full = (strides[i] * (input[i].saturating_sub(1))
                + output_padding[i]
                + (kernel[i] - 1) * dilations[i]
                + 1) as i64;
            let same = matches!(self.auto_pad, AutoPad::SameUpper | AutoPad::SameLower);
            if requested.is_some() || same {
                // The spec: a given output shape (or input * stride for SAME_*) fixes the
                // total padding; SAME_UPPER puts the odd unit at the end, others at the start.
                let o = requested.as_ref().map_or(input[i] * strides[i], |r| r[i]);
                let total = full - o as i64;
                let pb = if self.auto_pad == AutoPad::SameUpper {
                    total.div_euclid(2)
                } else {
                    total - total.div_euclid(2)
                };
                pads_begin[i] = pb;
                output[i] = o;
            } else {
                let (pb, pe) = if self.auto_pad == AutoPad::Valid {
                    (0, 0)
                } else {
                    (explicit[i] as i64, explicit[i + spatial] as i64)
                };
                let o = full - pb - pe;
                if o < 0 {
                    return Err(OpError::shape(format!(
                        "ConvTranspose output dim {o} is negative"
                    )));
                }
                pads_begin[i] = pb;
                output[i] = o as usize;
            }
        }
        let k_count: usize = kernel.iter().product();
        let i_count: usize = input.iter().product();
        let o_count: usize = output.iter().product();
        crate::ops::check_size(&[n, m, o_count])?;
        crate::ops::check_size(&[mg, k_count, i_count])?;
        let x_std = x.as_standard_layout();
        let x3 = x_std
            .view()
            .into_shape_with_order((n, c, i_count))
            .map_err(|e| OpError::shape(e.to_string()))?;
        let w_std = w.as_standard_layout();
        let w2 = w_std
            .view()
            .into_shape_with_order((c, mg * k_count))
            .map_err(|e| OpError::shape(e.to_string()))?;
        let mut out_shape = vec![n, m];
        out_shape.extend(&output);
        let mut out = ArrayD::<T>::zeros(IxDyn(&out_shape));
        {
            let mut out3 = out
                .view_mut()
                .into_shape_with_order((n, m, o_count))
                .map_err(|e| OpError::shape(e.to_string()))?;
            let mut cols = ndarray::Array2::<T>::zeros((mg * k_count, i_count));
            for b in 0..n {
                for gi in 0..g {
                    let xg = x3.slice(s![b, gi * cg..(gi + 1) * cg, ..]);
                    let wg = w2.slice(s![gi * cg..(gi + 1) * cg, ..]);
                    gemm(T::one(), wg.t(), xg, T::zero(), cols.view_mut());
                    let mut og = out3.slice_mut(s![b, gi * mg..(gi + 1) * mg, ..]);
                    col2im(
                        &cols,
                        &kernel,
                        &strides,
                        &dilations,
                        &pads_begin,
                        &input,
                        &output,
                        &mut og,
                    );
                }
            }
        }
        add_channel_bias(&mut out, bias, m)?;
        Ok(out)
    }
}

impl Geometry {
    /// Per spatial axis: for each (kernel offset, output position), the input position or
    /// `None` when it falls in the padding.
    fn index_tables(&self) -> Vec<Vec<Option<usize>>> {
        (0..self.kernel.len())
            .map(|d| {
                let mut table = Vec::with_capacity(self.kernel[d] * self.output[d]);
                for k in 0..self.kernel[d] {
                    for o in 0..self.output[d] {
                        let pos = (o * self.strides[d] + k * self.dilations[d]) as i64
                            - self.pads_begin[d] as i64;
                        table.push(if (0..self.input[d] as i64).contains(&pos) {
                            Some(pos as usize)
                        } else {
                            None
                        });
                    }
                }
                table
            })
            .collect()
    }
}

/// Fills `cols` ([C·K, O]) from `x` ([C, I]): row (c, kernel offset), column output position.
fn im2col<T: Copy + num_traits::Zero>(
    x: &ArrayView2<'_, T>,
    geo: &Geometry,
    tables: &[Vec<Option<usize>>],
    cols: &mut ndarray::Array2<T>,
) {
    let spatial = geo.kernel.len();
    let k_count: usize = geo.kernel.iter().product();
    let o_count: usize = geo.output.iter().product();
    // Row-major strides of the input and output spatial grids.
    let mut in_strides = vec![1usize; spatial];
    for d in (0..spatial.saturating_sub(1)).rev() {
        in_strides[d] = in_strides[d + 1] * geo.input[d + 1];
    }
    let mut koff = vec![0usize; spatial];
    let mut opos = vec![0usize; spatial];
    for (r, mut row) in cols.axis_iter_mut(Axis(0)).enumerate() {
        let (c, kflat) = (r / k_count.max(1), r % k_count.max(1));
        let xc = x.row(c);
        // Decode the kernel offset of this row.
        let mut rest = kflat;
        for d in (0..spatial).rev() {
            koff[d] = rest % geo.kernel[d];
            rest /= geo.kernel[d];
        }
        opos.iter_mut().for_each(|p| *p = 0);
        for o in 0..o_count {
            let mut offset = Some(0usize);
            for d in 0..spatial {
                let entry = tables[d]
                    .get(koff[d] * geo.output[d] + opos[d])
                    .copied()
                    .flatten();
                offset = match (offset, entry) {
                    (Some(acc), Some(p)) => Some(acc + p * in_strides[d]),
                    _ => None,
                };
            }
            row[o] = offset
                .and_then(|i| xc.get(i).copied())
                .unwrap_or_else(T::zero);
            // Advance the output position (row-major odometer).
            for d in (0..spatial).rev() {
                opos[d] += 1;
                if opos[d] < geo.output[d] {
                    break;
                }
                opos[d] = 0;
            }
        }
    }
}

/// Scatter-adds `cols` ([M·K, I]) into `out` ([M, O]) at each kernel tap's output position.
#[allow(clippy::too_many_arguments)]
fn col2im<T: Float>(
    cols: &ndarray::Array2<T>,
    kernel: &[usize],
    strides: &[usize],
    dilations: &[usize],
    pads_begin: &[i64],
    input: &[usize],
    output: &[usize],
    out: &mut ndarray::ArrayViewMut2<'_, T>,
) {
    let spatial = kernel.len();
    let k_count: usize = kernel.iter().product();
    let mut out_strides = vec![1usize; spatial];
    for d in (0..spatial.saturating_sub(1)).rev() {
        out_strides[d] = out_strides[d + 1] * output[d + 1];
    }
    let mut koff = vec![0usize; spatial];
    let mut ipos = vec![0usize; spatial];
    for (r, row) in cols.axis_iter(Axis(0)).enumerate() {
        let (m, kflat) = (r / k_count.max(1), r % k_count.max(1));
        let mut rest = kflat;
        for d in (0..spatial).rev() {
            koff[d] = rest % kernel[d];
            rest /= kernel[d];
        }
        if m >= out.nrows() {
            continue;
        }
        let mut orow = out.row_mut(m);
        ipos.iter_mut().for_each(|p| *p = 0);
        for &v in row.iter() {
            let mut offset = Some(0usize);
            for d in 0..spatial {
                let pos = (ipos[d] * strides[d] + koff[d] * dilations[d]) as i64 - pads_begin[d];
                offset = match offset {
                    Some(acc) if (0..output[d] as i64).contains(&pos) => {
                        Some(acc + pos as usize * out_strides[d])
                    }
                    _ => None,
                };
            }
            if let Some(slot) = offset.and_then(|o| orow.get_mut(o)) {
                *slot = *slot + v;
            }
            for d in (0..spatial).rev() {
                ipos[d] += 1;
                if ipos[d] < input[d] {
                    break;
                }
                ipos[d] = 0;
            }
        }
    }
}

/// Adds `bias[m]` to channel `m` of an `[N, M, ...]` output.
fn add_channel_bias<T: Float>(
    out: &mut ArrayD<T>,
    bias: Option<&ArrayD<T>>,
    m: usize,
) -> OpResult<()> {
    let Some(bias) = bias else {
        return Ok(());
    };
    if bias.len() != m {
        return Err(OpError::shape(format!(
            "bias has {} values for {m} channels",
            bias.len()
        )));
    }
    let bias: Vec<T> = bias.iter().copied().collect();
    for mut image in out.axis_iter_mut(Axis(0)) {
        for (mut channel, &b) in image.axis_iter_mut(Axis(0)).zip(&bias) {
            channel.mapv_inplace(|v| v + b);
        }
    }
    Ok(())
}
