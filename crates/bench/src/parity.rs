//! Parity of every configuration of a case with the original: outputs on generated inputs
//! (text: every padding pattern, error also over the real tokens only; vision: a batch of
//! images, with top-1 agreement), against the original without optimizations on the CPU.

use anyhow::{Result, bail};
use transfuse_ir::Tensor;
use transfuse_ort::{ExecutionProvider, OptimizationLevel, Session, SessionOptions};

use super::case::{Case, Progress, Runner, run_session};
use super::results::{ConfigId, Parity};
use transfuse_parity::{InputSpec, Padding, Tolerance, compare_tensors, generate_inputs, mask_row};

/// The patterns checked: every mask pattern for text models, none for vision.
pub fn patterns(text: bool) -> Vec<Padding> {
    if text {
        vec![Padding::None, Padding::Right, Padding::Left, Padding::Holes]
    } else {
        vec![Padding::None]
    }
}

/// The original without optimizations in a CPU session: the parity reference of runs on
/// another execution provider (whose own no-optimization session is then compared too).
fn cpu_reference(case: &Case<'_>) -> Result<Session> {
    let Some(Ok(file)) = case.subject.files.get(&ConfigId::OrtDisabled) else {
        bail!("no original model")
    };
    let options = SessionOptions::default()
        .optimization_level(OptimizationLevel::Disabled)
        .intra_op_threads(case.settings.threads);
    Ok(Session::from_file(case.runtime, file, &options)?)
}

/// Compares every runner's outputs with the reference under each pattern of [`patterns`].
pub fn parity(
    case: &Case<'_>,
    seq: Option<usize>,
    runners: &mut [Runner],
    progress: &mut dyn Progress,
) -> Vec<Parity> {
    let (subject, settings) = (case.subject, case.settings);
    let batch = if subject.text {
        settings.parity_batch_text
    } else {
        settings.parity_batch_vision
    }
    .max(1);
    let tolerance = Tolerance {
        atol: 1e-4,
        rtol: 0.0,
    };
    // On another execution provider, the reference is the original on the CPU (exact fp32),
    // and that provider's own run of the original is compared too.
    let mut cpu = (settings.provider != ExecutionProvider::Cpu)
        .then(|| cpu_reference(case).map_err(|e| format!("{e:#}")));
    let compare_original = cpu.is_some();
    let mut out = Vec::new();
    for padding in patterns(subject.text) {
        let record = |config, error: Option<String>| Parity {
            config,
            padding: padding.to_string(),
            batch,
            error,
            max_abs: None,
            max_abs_real: None,
            top1_agreement: None,
        };
        let spec = InputSpec {
            batch,
            seq: seq.unwrap_or(1),
            seed: settings.seed.wrapping_add(1),
            padding,
        };
        let inputs = match generate_inputs(subject.model, &spec) {
            Ok(i) => i,
            Err(e) => {
                out.extend(
                    runners
                        .iter()
                        .map(|r| record(r.config, Some(format!("generating inputs: {e:#}")))),
                );
                continue;
            }
        };
        let scratch = case.dir.join("parity");
        let reference = match (
            &mut cpu,
            runners
                .iter_mut()
                .find(|r| r.config == ConfigId::OrtDisabled),
        ) {
            (Some(Ok(session)), _) => run_session(session, &inputs),
            (Some(Err(e)), _) => Err(anyhow::anyhow!("the CPU reference session: {e}")),
            (None, Some(r)) if r.error.is_none() => r.outputs(&inputs, &scratch),
            (None, _) => Err(anyhow::anyhow!(
                "the original without optimizations did not run"
            )),
        };
        let reference = match reference {
            Ok(outputs) => outputs,
            Err(e) => {
                out.extend(
                    runners
                        .iter()
                        .map(|r| record(r.config, Some(format!("reference: {e:#}")))),
                );
                continue;
            }
        };
        let real: Option<Vec<bool>> = (subject.text && padding != Padding::None).then(|| {
            (0..batch)
                .flat_map(|row| mask_row(padding, row, batch, spec.seq))
                .collect()
        });
        for runner in runners
            .iter_mut()
            .filter(|r| compare_original || r.config != ConfigId::OrtDisabled)
        {
            let mut entry = record(runner.config, None);
            if let Some(e) = &runner.error {
                entry.error = Some(format!("did not run: {e}"));
                out.push(entry);
                continue;
            }
            match runner.outputs(&inputs, &scratch) {
                Err(e) => entry.error = Some(format!("{e:#}")),
                Ok(outputs) => {
                    let (mut max_abs, mut max_real, mut top1) = (0.0f64, None::<f64>, None);
                    for (i, expected) in reference.iter().enumerate() {
                        let actual = outputs
                            .iter()
                            .find(|t| t.name == expected.name)
                            .or_else(|| outputs.get(i));
                        let Some(actual) = actual else {
                            entry.error = Some(format!("no output '{}'", expected.name));
                            break;
                        };
                        let c = compare_tensors(&expected.name, actual, expected, tolerance);
                        if let Some(problem) = c.problem {
                            entry.error = Some(format!("output '{}': {problem}", expected.name));
                            break;
                        }
                        max_abs = max_abs.max(c.max_abs);
                        if top1.is_none() {
                            top1 = c.top1_agreement;
                        }
                        if let Some(real) = &real
                            && let Some(m) = real_tokens_error(actual, expected, real, tolerance)
                        {
                            max_real = Some(max_real.map_or(m, |x| x.max(m)));
                        }
                    }
                    if entry.error.is_none() {
                        entry.max_abs = Some(max_abs);
                        entry.max_abs_real = max_real;
                        entry.top1_agreement = top1;
                    }
                }
            }
            out.push(entry);
        }
        case.step(progress, &format!("parity ({padding} padding)"));
    }
    out
}

/// Max abs error over the real tokens of a `[batch, seq, ...]` output, `real` giving
/// `batch * seq` flags; `None` for outputs of another layout.
fn real_tokens_error(
    actual: &Tensor,
    expected: &Tensor,
    real: &[bool],
    tolerance: Tolerance,
) -> Option<f64> {
    if expected.dims.len() < 2 || actual.dims != expected.dims {
        return None;
    }
    let tokens = usize::try_from(expected.dims[0] * expected.dims[1]).ok()?;
    if tokens != real.len() || tokens == 0 {
        return None;
    }
    let (a, e) = (actual.to_f32_vec().ok()?, expected.to_f32_vec().ok()?);
    let width = e.len() / tokens;
    let pick = |v: &[f32]| -> Vec<f32> {
        v.chunks(width.max(1))
            .zip(real)
            .filter(|(_, keep)| **keep)
            .flat_map(|(c, _)| c.iter().copied())
            .collect()
    };
    let (a, e) = (pick(&a), pick(&e));
    let dims = vec![(e.len() / width.max(1)) as i64, width as i64];
    let c = compare_tensors(
        &expected.name,
        &Tensor::from_f32("a", dims.clone(), &a),
        &Tensor::from_f32("e", dims, &e),
        tolerance,
    );
    Some(c.max_abs)
}
