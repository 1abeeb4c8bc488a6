//! Options of [`crate::optimize`]: which fusions run and the runner's limits.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::Duration;

use crate::error::RewriteError;
use crate::fusions::FUSIONS;

/// A set of fusions by name (see [`FUSIONS`] and `docs/fusions.md`).
///
/// Parses a comma-separated list:
/// - `all` or `none`;
/// - names (`layernorm,gelu`): exactly those fusions;
/// - a list whose first item is `-name` starts from every fusion: `-attention` is every
///   fusion but attention, the same as `all,-attention`;
/// - after `all` or a name, items apply left to right: `name` adds one, `-name` removes one.
///
/// An empty list or item, `none` next to anything else, `all` after the first item, and an
/// unknown name are errors ([`RewriteError::InvalidFusionList`],
/// [`RewriteError::UnknownFusion`]) that list the valid names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FusionSet {
    enabled: BTreeSet<&'static str>,
}

impl FusionSet {
    /// Every fusion.
    pub fn all() -> FusionSet {
        FusionSet {
            enabled: FUSIONS.iter().map(|f| f.name).collect(),
        }
    }

    /// No fusion: [`crate::optimize`] returns the model exactly as loaded, without going
    /// through the e-graph (a faithful baseline).
    pub fn none() -> FusionSet {
        FusionSet {
            enabled: BTreeSet::new(),
        }
    }

    /// True when the fusion called `name` is enabled.
    pub fn contains(&self, name: &str) -> bool {
        self.enabled.contains(name)
    }

    /// The enabled fusions' names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.enabled.iter().copied()
    }

    /// True when no fusion is enabled.
    pub fn is_empty(&self) -> bool {
        self.enabled.is_empty()
    }
}

impl Default for FusionSet {
    fn default() -> Self {
        FusionSet::all()
    }
}

impl FusionSet {
    /// The valid names, comma separated, for error messages.
    pub fn valid_names() -> String {
        let mut names = vec!["all", "none"];
        names.extend(FUSIONS.iter().map(|f| f.name));
        names.join(", ")
    }

    /// The left-out fusions whose rules still run because an enabled fusion needs them, as
    /// `(left out, needed by)`: their pattern is then fused into the other fusion's op (with
    /// `-gelu`, `biasgelu` still turns `Gelu(x + b)` into `BiasGelu`).
    pub fn still_running(&self) -> Vec<(&'static str, &'static str)> {
        let mut out = Vec::new();
        for f in FUSIONS.iter().filter(|f| self.contains(f.name)) {
            for need in f.needs {
                if !self.contains(need) && !out.iter().any(|(n, _)| n == need) {
                    out.push((*need, f.name));
                }
            }
        }
        out
    }
}

impl FromStr for FusionSet {
    type Err = RewriteError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: String| RewriteError::InvalidFusionList {
            reason,
            valid: FusionSet::valid_names(),
        };
        let tokens: Vec<&str> = s.split(',').map(str::trim).collect();
        if tokens.iter().all(|t| t.is_empty()) {
            return Err(invalid("the list is empty".to_string()));
        }
        if tokens.iter().any(|t| t.is_empty()) {
            return Err(invalid(format!("'{s}' has an empty item")));
        }
        if tokens.contains(&"none") && tokens.len() > 1 {
            return Err(invalid(format!(
                "'none' cannot be combined with other items ('{s}')"
            )));
        }
        let mut set = match tokens.first() {
            Some(t) if t.starts_with('-') => FusionSet::all(),
            _ => FusionSet::none(),
        };
        for (i, token) in tokens.iter().enumerate() {
            match *token {
                "all" if i == 0 => set = FusionSet::all(),
                "all" => {
                    return Err(invalid(format!("'all' can only come first ('{s}')")));
                }
                "none" => set = FusionSet::none(),
                _ => {
                    let (remove, name) = match token.strip_prefix('-') {
                        Some(n) => (true, n.trim()),
                        None => (false, *token),
                    };
                    let fusion = FUSIONS.iter().find(|f| f.name == name).ok_or_else(|| {
                        RewriteError::UnknownFusion {
                            name: name.to_string(),
                            valid: FusionSet::valid_names(),
                        }
                    })?;
                    if remove {
                        set.enabled.remove(fusion.name);
                    } else {
                        set.enabled.insert(fusion.name);
                    }
                }
            }
        }
        Ok(set)
    }
}

/// Limits of the equality-saturation run. egg checks them between rule applications, so the
/// node limit can be overshot by one iteration's additions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunnerLimits {
    /// Refuse graphs with more nodes than this (e-graph memory grows faster than linearly
    /// with the node count: about 1.4 GB at 100,000 nodes). Real encoders have a few
    /// thousand.
    pub max_graph_nodes: usize,
    /// Stop when the e-graph has more e-nodes than this.
    pub node_limit: usize,
    /// Stop after this many iterations.
    pub iter_limit: usize,
    /// Stop after this much time.
    pub time_limit: Duration,
}

impl Default for RunnerLimits {
    fn default() -> Self {
        RunnerLimits {
            max_graph_nodes: 100_000,
            node_limit: 200_000,
            iter_limit: 30,
            time_limit: Duration::from_secs(10),
        }
    }
}

/// Which fused attention op to emit (`--attention-op`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttentionOp {
    /// Packed `Attention` where the Q, K and V projections can be packed into one weight,
    /// `MultiHeadAttention` elsewhere.
    #[default]
    Auto,
    /// Only packed `Attention`: a block whose projections cannot be packed stays unfused.
    Attention,
    /// Only `MultiHeadAttention` (on the Q, K and V projections as they are).
    MultiHeadAttention,
}

impl AttentionOp {
    /// The fused op types this choice rules out.
    pub(crate) fn excluded(self) -> &'static [(&'static str, &'static str)] {
        match self {
            AttentionOp::Auto => &[],
            AttentionOp::Attention => &[(crate::rule::MS, "MultiHeadAttention")],
            AttentionOp::MultiHeadAttention => &[(crate::rule::MS, "Attention")],
        }
    }
}

impl std::str::FromStr for AttentionOp {
    type Err = RewriteError;

    /// `auto`, `attention` or `mha`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(AttentionOp::Auto),
            "attention" => Ok(AttentionOp::Attention),
            "mha" => Ok(AttentionOp::MultiHeadAttention),
            other => Err(RewriteError::UnknownAttentionOp(other.to_string())),
        }
    }
}

/// The device the optimized model is meant for (`--target`): it leaves out the fusions whose
/// fused op ONNX Runtime runs slower there than the ops it replaces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Target {
    /// Every fusion: ONNX Runtime's CUDA kernels of the fused ops are all faster.
    #[default]
    Gpu,
    /// Leaves out `skiplayernorm` and `skiprmsnorm`. ONNX Runtime's CPU kernel of
    /// `SkipLayerNormalization` and `SkipSimplifiedLayerNormalization` (one shared scalar loop)
    /// is slower than the `Add` and vectorized norm it replaces: ViT-B/16 on 2 threads ran 5%
    /// faster without it, BERT-base the same (`docs/fusions.md`).
    Cpu,
}

impl Target {
    /// The fusions this target leaves out.
    pub fn left_out(self) -> &'static [&'static str] {
        match self {
            Target::Gpu => &[],
            Target::Cpu => &["skiplayernorm", "skiprmsnorm"],
        }
    }

    /// The name `--target` takes.
    pub fn name(self) -> &'static str {
        match self {
            Target::Gpu => "gpu",
            Target::Cpu => "cpu",
        }
    }
}

impl std::str::FromStr for Target {
    type Err = RewriteError;

    /// `gpu` or `cpu`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "gpu" => Ok(Target::Gpu),
            "cpu" => Ok(Target::Cpu),
            other => Err(RewriteError::UnknownTarget(other.to_string())),
        }
    }
}

impl FusionSet {
    /// This set without the fusions `target` leaves out, and the names it removed.
    pub fn for_target(&self, target: Target) -> (FusionSet, Vec<&'static str>) {
        let mut set = self.clone();
        let removed = target
            .left_out()
            .iter()
            .copied()
            .filter(|name| set.enabled.remove(name))
            .collect();
        (set, removed)
    }
}

/// Options of [`crate::optimize`].
#[derive(Clone, Debug, Default)]
pub struct OptimizeOptions {
    /// The fusions to apply.
    pub fusions: FusionSet,
    /// Packed `Attention`, `MultiHeadAttention`, or each where it fits (the default).
    pub attention_op: AttentionOp,
    /// Runner limits.
    pub limits: RunnerLimits,
    /// Dims made static before optimizing (`batch=1,sequence=128`, `input_ids=1x128`); when
    /// any are, every shape computation they determine is folded to constants after
    /// lowering. Empty by default (see [`crate::FixedShapes`]).
    pub fixed_shapes: crate::fixed_shapes::FixedShapes,
    /// Declare the int64 graph inputs (token ids, token types, positions, masks) int32 in
    /// the output and remove the casts that become no-ops (see [`crate::int32_inputs`]).
    /// The output then computes the same only for values that fit in int32.
    pub int32_inputs: bool,
    /// Rules run besides the enabled fusions' (tests use it to show that verification
    /// catches a rule that is wrong on purpose). Their fused ops are extracted only where an
    /// enabled fusion emits the same op.
    #[doc(hidden)]
    pub extra_rules: std::sync::Arc<Vec<crate::rule::Rewrite>>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn cpu_target_leaves_out_the_skip_norms_only() {
        let (cpu, removed) = FusionSet::all().for_target(Target::Cpu);
        assert_eq!(removed, ["skiplayernorm", "skiprmsnorm"]);
        assert!(!cpu.contains("skiplayernorm") && !cpu.contains("skiprmsnorm"));
        assert_eq!(cpu.names().count() + 2, FusionSet::all().names().count());
        let (gpu, removed) = FusionSet::all().for_target(Target::Gpu);
        assert!(removed.is_empty());
        assert_eq!(gpu, FusionSet::all());
        let (none, removed) = FusionSet::none().for_target(Target::Cpu);
        assert!(removed.is_empty() && none.is_empty());
        assert_eq!("cpu".parse::<Target>().unwrap(), Target::Cpu);
        assert!("tpu".parse::<Target>().is_err());
    }

    fn names(s: &str) -> Vec<&'static str> {
        s.parse::<FusionSet>().unwrap().names().collect()
    }

    fn all_but(left_out: &[&str]) -> Vec<&'static str> {
        FusionSet::all()
            .names()
            .filter(|n| !left_out.contains(n))
            .collect()
    }

    #[test]
    fn all_none_and_names() {
        assert_eq!(names("all"), FusionSet::all().names().collect::<Vec<_>>());
        assert!(names("none").is_empty());
        assert_eq!(names("gelu, layernorm"), vec!["gelu", "layernorm"]);
    }

    #[test]
    fn a_leading_minus_means_all_but() {
        assert_eq!(names("-attention"), all_but(&["attention"]));
        assert_eq!(names("all,-attention"), all_but(&["attention"]));
        assert_eq!(names("-attention,-gelu"), all_but(&["attention", "gelu"]));
        assert_eq!(names("-attention,attention"), all_but(&[]));
        assert_eq!(names("gelu,layernorm,-gelu"), vec!["layernorm"]);
    }

    #[test]
    fn malformed_lists_are_errors_that_list_the_valid_names() {
        for bad in [
            "",
            " ",
            ",",
            "all,none",
            "none,gelu",
            "gelu,,layernorm",
            "gelu,all",
            "-",
        ] {
            let err = bad.parse::<FusionSet>().unwrap_err().to_string();
            assert!(
                err.contains("valid: all, none, layernorm"),
                "{bad:?}: {err}"
            );
        }
        let err = "atention".parse::<FusionSet>().unwrap_err().to_string();
        assert!(err.contains("unknown fusion 'atention'"), "{err}");
        assert!(err.contains("attention"), "{err}");
    }

    #[test]
    fn left_out_fusions_another_one_needs_are_named() {
        let set: FusionSet = "-gelu".parse().unwrap();
        assert_eq!(set.still_running(), vec![("gelu", "biasgelu")]);
        let set: FusionSet = "-layernorm".parse().unwrap();
        assert_eq!(set.still_running(), vec![("layernorm", "skiplayernorm")]);
        let set: FusionSet = "-gelu,-biasgelu".parse().unwrap();
        assert!(set.still_running().is_empty());
        assert!(FusionSet::all().still_running().is_empty());
    }
}
