//! Typed errors of the rewrite engine.

/// Everything that can go wrong while optimizing a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RewriteError {
    /// A node reads a value nothing defines (the graph was not checked).
    #[error("node '{node}' reads '{value}', which nothing defines")]
    UndefinedValue {
        /// The reading node.
        node: String,
        /// The missing value.
        value: String,
    },
    /// `--fusions` named a fusion that does not exist.
    #[error("unknown fusion '{name}' (valid: {valid})")]
    UnknownFusion {
        /// The name given.
        name: String,
        /// The valid names, comma separated.
        valid: String,
    },
    /// `--fusions` is malformed: empty, an empty item, `none` with other items, or `all`
    /// after the first item.
    #[error("invalid fusion list: {reason} (valid: {valid})")]
    InvalidFusionList {
        /// What is wrong.
        reason: String,
        /// The valid names, comma separated.
        valid: String,
    },
    /// A rule failed to build (a bug in a fusion's pattern).
    #[error("unknown attention op '{0}' (valid: auto, attention, mha)")]
    /// `--attention-op` is none of `auto`, `attention`, `mha`.
    UnknownAttentionOp(String),
    /// A `--target` value other than `gpu` and `cpu`.
    #[error("unknown target '{0}' (valid: gpu, cpu)")]
    UnknownTarget(String),
    #[error("rule '{rule}' is invalid: {reason}")]
    InvalidRule {
        /// The rule.
        rule: String,
        /// Why.
        reason: String,
    },
    /// Extraction found no valid graph (a bug in a rule or the extractor).
    #[error("extraction failed: {0}")]
    Extraction(String),
    /// The model imports a default-domain opset newer than transfuse knows (see
    /// [`MAX_KNOWN_OPSET`](crate::opset::MAX_KNOWN_OPSET)); its ops may mean something else.
    #[error(
        "the model imports ONNX opset {version}, newer than the newest transfuse knows ({max}); \
         refusing to rewrite ops whose meaning it cannot know"
    )]
    UnsupportedOpset {
        /// The model's default-domain opset.
        version: i64,
        /// The newest opset transfuse knows.
        max: i64,
    },
    /// The graph has more nodes than [`RunnerLimits::max_graph_nodes`](crate::RunnerLimits).
    #[error(
        "the graph has {nodes} nodes, more than the {limit} this optimizer accepts \
         (RunnerLimits::max_graph_nodes); the e-graph's memory grows faster than linearly \
         with the node count"
    )]
    GraphTooLarge {
        /// Nodes of the model's main graph.
        nodes: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The fixed shapes asked for do not fit the model (see [`crate::FixedShapes`]).
    #[error("fixed shapes: {0}")]
    FixedShapes(#[from] crate::fixed_shapes::FixedShapesError),
    /// [`to_float16`](crate::to_float16) cannot convert this model.
    #[error("cannot convert to float16: {0}")]
    Float16(String),
    /// [`narrow_int64_inputs`](crate::narrow_int64_inputs) cannot narrow this model.
    #[error("cannot narrow the inputs to int32: {0}")]
    Int32Inputs(String),
    /// The rewritten graph failed the IR's checks.
    #[error("the rewritten graph is invalid: {0}")]
    InvalidGraph(#[from] transfuse_ir::IrError),
}
