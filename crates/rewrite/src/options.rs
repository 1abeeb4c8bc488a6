//! Options of [`crate::optimize`]: which fusions run and the runner's limits.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::Duration;

use crate::error::RewriteError;
use crate::fusions::FUSIONS;

/// A set of fusions by name (see [`FUSIONS`] and `docs/fusions.md`).
///
/// Parses `all`, `none`, or a comma-separated list processed left to right where `name`
/// adds a fusion and `-name` removes one: `all,-attention` is every fusion but attention.
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

impl FromStr for FusionSet {
    type Err = RewriteError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut set = FusionSet::none();
        for token in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            match token {
                "all" => set = FusionSet::all(),
                "none" => set = FusionSet::none(),
                _ => {
                    let (remove, name) = match token.strip_prefix('-') {
                        Some(n) => (true, n.trim()),
                        None => (false, token),
                    };
                    let fusion = FUSIONS.iter().find(|f| f.name == name).ok_or_else(|| {
                        RewriteError::UnknownFusion {
                            name: name.to_string(),
                            valid: FUSIONS
                                .iter()
                                .map(|f| f.name)
                                .collect::<Vec<_>>()
                                .join(", "),
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

/// Options of [`crate::optimize`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OptimizeOptions {
    /// The fusions to apply.
    pub fusions: FusionSet,
    /// Runner limits.
    pub limits: RunnerLimits,
}
