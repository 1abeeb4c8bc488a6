//! `optimize --verify`: before anything is written, the original and the optimized model run
//! in the reference interpreter on generated inputs and every output is compared (the
//! parity crate's check). On a difference nothing is written and the error names the first
//! diverging value and the fusion whose op computed it.
//!
//! Inputs: text models run on one batch of sequence [`SEQ`] whose rows carry right, left
//! and hole padding (a model whose input shapes are fixed runs at them, once per padding
//! pattern); other models (images, audio) run on inputs at their size, dims they leave open
//! at [`SEQ`] (or longer where the original cannot run at it). Inputs are generated from
//! the original's signature; the optimized model gets the same values at its own declared
//! integer widths (int32 after `--int32-inputs`). NaN matches NaN and
//! equal infinities match. Scaling the inputs is no overflow test for attention (the
//! normalization before it undoes any scale, and a decomposed LayerNorm overflows where the
//! fused one does not), so the overflow cases of attention are covered by the rewrite
//! crate's tests on models with huge weights, not here.

use std::time::Instant;

use anyhow::{Context, Result};
use transfuse_ir::{DataType, Model, Tensor};
use transfuse_parity::inputs::{InputRole, classify_inputs};
use transfuse_parity::{InputSource, InputSpec, Options, Padding, Runtime, Tolerance};

use crate::Mismatch;

/// Sequence length of the generated text inputs.
pub const SEQ: usize = 16;

/// The tolerance of the comparison: the parity check's default (absolute 1e-4, see
/// `docs/parity.md`).
pub const TOLERANCE: Tolerance = Tolerance::absolute(1e-4);

/// One set of inputs and its verdict.
#[derive(Clone, Debug)]
pub struct Case {
    /// What the inputs were.
    pub name: String,
    /// The largest absolute difference over all outputs.
    pub max_abs: f64,
}

/// A passed (or skipped) verification.
#[derive(Clone, Debug)]
pub struct Verification {
    /// The cases run.
    pub cases: Vec<Case>,
    /// Wall time, in milliseconds.
    pub ms: f64,
    /// Why nothing was compared, when the original cannot run in the reference interpreter.
    pub skipped: Option<String>,
}

/// Runs `original` and `optimized` on the generated cases and compares their outputs.
/// Returns a [`Mismatch`] error naming the first diverging value and the fusion that
/// produced it when they differ, another error when a model cannot run.
pub fn verify(original: &Model, optimized: &Model) -> Result<Verification> {
    verify_within(original, optimized, TOLERANCE)
}

/// [`verify`] under another tolerance ([`Tolerance::float16`] for an fp16 model).
pub fn verify_within(
    original: &Model,
    optimized: &Model,
    tolerance: Tolerance,
) -> Result<Verification> {
    let start = Instant::now();
    let roles = classify_inputs(original).context("verifying: reading the input signature")?;
    let text = roles
        .iter()
        .any(|(_, r)| matches!(r, InputRole::TokenIds { .. } | InputRole::Mask));
    let spec = |batch, padding| InputSpec {
        batch,
        seq: SEQ,
        seed: 0,
        padding,
    };
    let mut cases: Vec<(String, InputSource)> = Vec::new();
    if text {
        // One batch, one mask pattern per row: one run of each model covers all three.
        let generated =
            transfuse_parity::generate_inputs(original, &spec(PATTERNS.len(), Padding::Right))
                .context("verifying: generating inputs")?;
        let masks: Vec<&String> = roles
            .iter()
            .filter(|(_, role)| *role == InputRole::Mask)
            .map(|(name, _)| name)
            .collect();
        let with_masks = |pattern: &dyn Fn(usize) -> Padding| {
            let mut inputs = generated.clone();
            for t in inputs.iter_mut().filter(|t| masks.contains(&&t.name)) {
                *t = patterned_mask(t, pattern);
            }
            InputSource::Given(inputs)
        };
        let mask_dims = generated
            .iter()
            .find(|t| masks.contains(&&t.name))
            .map(|t| t.dims.clone());
        match mask_dims {
            Some(dims) if dims != [PATTERNS.len() as i64, SEQ as i64] => {
                // Shapes fixed by the model (`--fix-shapes`): one case per pattern.
                let shape: Vec<String> = dims.iter().map(i64::to_string).collect();
                for p in PATTERNS {
                    let name = format!("{}, {p:?} padding", shape.join("x")).to_lowercase();
                    cases.push((name, with_masks(&|_| p)));
                }
            }
            _ => cases.push((
                format!("seq {SEQ}, rows with right, left and hole padding"),
                with_masks(&|row| PATTERNS.get(row).copied().unwrap_or(Padding::Right)),
            )),
        }
    } else {
        return verify_generated(original, optimized, tolerance, start);
    }
    let mut done = Vec::new();
    for (name, inputs) in cases {
        match check_case(original, optimized, tolerance, name, inputs, start)? {
            Ok(case) => done.push(case),
            Err(skipped) => return Ok(skipped),
        }
    }
    Ok(Verification {
        cases: done,
        ms: start.elapsed().as_secs_f64() * 1e3,
        skipped: None,
    })
}

/// One case: `Ok(Ok(case))` when both models agree, `Ok(Err(skipped))` when the original
/// itself cannot run on these inputs (see [`unrunnable`]), an error on a difference or when
/// only the optimized model fails.
fn check_case(
    original: &Model,
    optimized: &Model,
    tolerance: Tolerance,
    name: String,
    inputs: InputSource,
    start: Instant,
) -> Result<std::result::Result<Case, Verification>> {
    let options = Options {
        inputs,
        runtime: Runtime::reference(),
        tolerance,
        locate_divergence: true,
    };
    let report = match transfuse_parity::check(original, optimized, &options) {
        Ok(report) => report,
        Err(e) => return unrunnable(original, &options.inputs, &name, e, start).map(Err),
    };
    if !report.pass {
        return Err(mismatch(optimized, &name, &report).into());
    }
    Ok(Ok(Case {
        name,
        max_abs: report.max_abs(),
    }))
}

/// Lengths tried, in order, for the dims a non-text model leaves open (an audio model's
/// samples, say): a longer one only when the original cannot run at the shorter, as a
/// feature encoder of strided convolutions (wav2vec2: a 400-sample receptive field) cannot
/// at [`SEQ`].
const OPEN_DIM_LENGTHS: [usize; 2] = [SEQ, 1024];

/// Verification of a non-text model on generated inputs (see [`OPEN_DIM_LENGTHS`]).
fn verify_generated(
    original: &Model,
    optimized: &Model,
    tolerance: Tolerance,
    start: Instant,
) -> Result<Verification> {
    let mut skipped = None;
    for seq in OPEN_DIM_LENGTHS {
        let name = if seq == SEQ {
            "generated inputs".to_string()
        } else {
            format!("generated inputs, open dims {seq}")
        };
        let inputs = InputSource::Generated(InputSpec {
            batch: 1,
            seq,
            seed: 0,
            padding: Padding::None,
        });
        match check_case(original, optimized, tolerance, name, inputs, start)? {
            Ok(case) => {
                return Ok(Verification {
                    cases: vec![case],
                    ms: start.elapsed().as_secs_f64() * 1e3,
                    skipped: None,
                });
            }
            // The original cannot run at this length: try the next.
            Err(unverified) => skipped = Some(unverified),
        }
    }
    skipped.context("verifying: no input length was tried")
}

/// A check that could not run: when the original itself does not run in the reference
/// interpreter (an op it lacks), verification is skipped with the reason; when only the
/// optimized model fails, that is a [`Mismatch`].
fn unrunnable(
    original: &Model,
    inputs: &InputSource,
    case: &str,
    error: transfuse_parity::ParityError,
    start: Instant,
) -> Result<Verification> {
    let tensors = match inputs {
        InputSource::Generated(spec) => transfuse_parity::generate_inputs(original, spec),
        InputSource::Given(t) => Ok(t.clone()),
        InputSource::Directory(_) => return Err(error).context("verifying"),
    };
    let original_runs = tensors
        .and_then(|t| transfuse_parity::run_model(original, &t, &Runtime::reference()))
        .map_err(|e| e.to_string());
    match original_runs {
        Err(reason) => Ok(Verification {
            cases: Vec::new(),
            ms: start.elapsed().as_secs_f64() * 1e3,
            skipped: Some(format!(
                "the reference interpreter cannot run the original ({reason})"
            )),
        }),
        Ok(_) => Err(Mismatch(format!(
            "verification failed ({case}): the optimized model does not run where the original does: {error}; nothing written (--no-verify skips the check)"
        ))
        .into()),
    }
}

/// The mask pattern of each row of the text case.
const PATTERNS: [Padding; 3] = [Padding::Right, Padding::Left, Padding::Holes];

/// A mask like `t` whose row `r` follows `pattern(r)`; `t` itself when its shape or type is
/// not a plain `[rows, seq]` int64/int32/float/bool mask.
fn patterned_mask(t: &Tensor, pattern: &dyn Fn(usize) -> Padding) -> Tensor {
    let (rows, seq) = match t.dims.as_slice() {
        [r, s] if *r > 0 && *s > 0 => (*r as usize, *s as usize),
        _ => return t.clone(),
    };
    let mask: Vec<bool> = (0..rows)
        .flat_map(|r| transfuse_parity::mask_row(pattern(r), r, rows, seq))
        .collect();
    let dims = t.dims.clone();
    let name = t.name.clone();
    match t.dtype {
        DataType::Int64 => Tensor::from_i64(
            name,
            dims,
            &mask.iter().map(|&m| i64::from(m)).collect::<Vec<_>>(),
        ),
        DataType::Int32 => Tensor::from_i32(
            name,
            dims,
            &mask.iter().map(|&m| i32::from(m)).collect::<Vec<_>>(),
        ),
        DataType::Float => Tensor::from_f32(
            name,
            dims,
            &mask
                .iter()
                .map(|&m| f32::from(u8::from(m)))
                .collect::<Vec<_>>(),
        ),
        DataType::Bool => Tensor::from_bool(name, dims, &mask),
        _ => t.clone(),
    }
}

/// The error for a failed case: the first diverging value, the op of the optimized model
/// that computed it, and the fusion that emits that op.
fn mismatch(optimized: &Model, case: &str, report: &transfuse_parity::Report) -> Mismatch {
    let (value, comparison) = match &report.first_divergence {
        Some(d) => (d.comparison.name.clone(), &d.comparison),
        None => match report.outputs.iter().find(|o| !o.pass) {
            Some(o) => (o.name.clone(), o),
            None => {
                return Mismatch(format!("verification failed ({case}); nothing written"));
            }
        },
    };
    let producer = optimized
        .graph
        .nodes
        .iter()
        .find(|n| n.outputs.contains(&value));
    let by = match producer {
        Some(node) => {
            let fusion = transfuse_rewrite::FUSIONS
                .iter()
                .find(|f| {
                    f.emits
                        .iter()
                        .any(|(d, op)| *d == node.domain && *op == node.op_type)
                })
                .map_or_else(
                    || "no fusion emits it: a rewrite upstream changed its inputs".to_string(),
                    |f| format!("fusion '{}'", f.name),
                );
            format!("computed by {} '{}' ({fusion})", node.op_type, node.name)
        }
        None => "not computed by a node".to_string(),
    };
    Mismatch(format!(
        "verification failed ({case}): '{value}' differs (max abs {:.3e}{}), {by}; nothing written (--no-verify skips the check)",
        comparison.max_abs,
        comparison
            .problem
            .as_deref()
            .map(|p| format!(", {p}"))
            .unwrap_or_default(),
    ))
}
