//! The fusions: one file each, all registered in [`FUSIONS`].
//!
//! A fusion is a named set of rewrite rules plus the op types it emits. Extraction refuses a
//! *new* node of an op type that only disabled fusions emit, so a fusion's rules may run to
//! feed another one (`needs`) without their own results appearing.

use crate::error::RewriteError;
use crate::options::FusionSet;
use crate::rule::Rewrite;

mod attention;
pub(crate) use attention::diagnose as diagnose_attention;
mod biasgelu;
mod embed_layer_norm;
mod fastgelu;
mod gelu;
mod layernorm;
mod norm_conditions;
pub mod normalize;
mod quickgelu;
mod rmsnorm;
mod skiplayernorm;

/// One fusion of the registry.
#[derive(Debug)]
pub struct Fusion {
    /// Name used by `--fusions`.
    pub name: &'static str,
    /// One line for help texts.
    pub summary: &'static str,
    /// `(domain, op type)` of the nodes it creates.
    pub emits: &'static [(&'static str, &'static str)],
    /// Fusions whose rules must also run because this one's patterns start from their
    /// results.
    pub needs: &'static [&'static str],
    /// Builds its rules.
    pub rules: fn() -> Result<Vec<Rewrite>, RewriteError>,
}

use crate::rule::MS;

/// Every fusion, in the order they are documented.
pub const FUSIONS: &[Fusion] = &[
    Fusion {
        name: "layernorm",
        summary: "decomposed layer normalization -> LayerNormalization",
        emits: &[("", "LayerNormalization")],
        needs: &[],
        rules: layernorm::rules,
    },
    Fusion {
        name: "skiplayernorm",
        summary: "LayerNormalization of a residual sum -> SkipLayerNormalization (bias folded)",
        emits: &[(MS, "SkipLayerNormalization")],
        needs: &["layernorm"],
        rules: skiplayernorm::rules,
    },
    Fusion {
        name: "rmsnorm",
        summary: "RMS normalization (x / sqrt(mean(x^2) + eps) * g) -> RMSNormalization (opset 23; the model's opset is raised when that is safe), and the form skiprmsnorm starts from",
        emits: &[("", "RMSNormalization")],
        needs: &[],
        rules: rmsnorm::rules,
    },
    Fusion {
        name: "skiprmsnorm",
        summary: "RMS norm of a residual sum -> SkipSimplifiedLayerNormalization",
        emits: &[(MS, "SkipSimplifiedLayerNormalization")],
        needs: &["rmsnorm"],
        rules: rmsnorm::skip_rules,
    },
    Fusion {
        name: "gelu",
        summary: "erf GELU -> Gelu",
        emits: &[(MS, "Gelu")],
        needs: &[],
        rules: gelu::rules,
    },
    Fusion {
        name: "fastgelu",
        summary: "tanh GELU (and ONNX Gelu approximate=tanh) -> FastGelu, with its bias",
        emits: &[(MS, "FastGelu")],
        needs: &[],
        rules: fastgelu::rules,
    },
    Fusion {
        name: "quickgelu",
        summary: "x * Sigmoid(alpha * x) -> QuickGelu",
        emits: &[(MS, "QuickGelu")],
        needs: &[],
        rules: quickgelu::rules,
    },
    Fusion {
        name: "biasgelu",
        summary: "erf Gelu of MatMul + bias -> BiasGelu",
        emits: &[(MS, "BiasGelu")],
        needs: &["gelu"],
        rules: biasgelu::rules,
    },
    Fusion {
        name: "attention",
        summary: "self-attention (any exporter) -> Attention (packed QKV) or MultiHeadAttention",
        emits: &[(MS, "Attention"), (MS, "MultiHeadAttention")],
        needs: &[],
        rules: attention::rules,
    },
    Fusion {
        name: "embedlayernorm",
        summary: "word + position [+ segment] gathers + LayerNorm -> EmbedLayerNormalization",
        emits: &[(MS, "EmbedLayerNormalization")],
        needs: &["layernorm"],
        rules: embed_layer_norm::rules,
    },
];

/// The fusion called `name`.
pub fn fusion(name: &str) -> Option<&'static Fusion> {
    FUSIONS.iter().find(|f| f.name == name)
}

/// Names of the fusions whose rules run for `set`: the set plus everything it needs.
pub fn closure(set: &FusionSet) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    let mut todo: Vec<&'static str> = set.names().collect();
    while let Some(name) = todo.pop() {
        if out.contains(&name) {
            continue;
        }
        out.push(name);
        if let Some(f) = fusion(name) {
            todo.extend(f.needs.iter().copied());
        }
    }
    out.sort_by_key(|n| FUSIONS.iter().position(|f| f.name == *n));
    out
}

/// The rules to run for `set`: the normalization rules (when any fusion is on) and the
/// rules of every fusion in its [`closure`].
pub fn rules_for(set: &FusionSet) -> Result<Vec<Rewrite>, RewriteError> {
    let names = closure(set);
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut rules = normalize::rules()?;
    for name in names {
        if let Some(f) = fusion(name) {
            rules.extend((f.rules)()?);
        }
    }
    Ok(rules)
}

/// `(domain, op)` pairs that extraction may create: those of enabled fusions.
pub fn allowed_new_ops(set: &FusionSet) -> Vec<(&'static str, &'static str)> {
    FUSIONS
        .iter()
        .filter(|f| set.contains(f.name))
        .flat_map(|f| f.emits.iter().copied())
        .collect()
}

/// `(domain, op)` pairs some fusion emits.
pub fn fused_ops() -> Vec<(&'static str, &'static str)> {
    FUSIONS
        .iter()
        .flat_map(|f| f.emits.iter().copied())
        .collect()
}
