//! The model: a graph plus its opset imports and metadata.

use transfuse_proto as pb;

use crate::Graph;

/// The default ONNX domain's canonical name in opset imports.
pub const ONNX_DOMAIN: &str = "";
/// ONNX Runtime's contrib-op domain, where the fused ops live.
pub const MS_DOMAIN: &str = "com.microsoft";

/// One opset import: the operator set version a model uses for a domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpsetImport {
    /// Domain (`""` for ONNX).
    pub domain: String,
    /// Opset version.
    pub version: i64,
}

/// An ONNX model.
///
/// Fields the project does not interpret (training info, functions, device configurations)
/// are kept as protobuf messages and written back unchanged.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Model {
    /// IR version, kept from the input (ONNX Runtime 1.31.1 accepts at most 13).
    pub ir_version: i64,
    /// Opset imports, in file order.
    pub opset_imports: Vec<OpsetImport>,
    /// Producer name.
    pub producer_name: String,
    /// Producer version.
    pub producer_version: String,
    /// Model domain.
    pub domain: String,
    /// Model version.
    pub model_version: i64,
    /// Documentation string.
    pub doc_string: String,
    /// The main graph.
    pub graph: Graph,
    /// `metadata_props`, in order.
    pub metadata_props: Vec<(String, String)>,
    /// Training information, kept verbatim.
    pub training_info: Vec<pb::TrainingInfoProto>,
    /// Model-local functions, kept verbatim.
    pub functions: Vec<pb::FunctionProto>,
    /// Device configurations, kept verbatim.
    pub configuration: Vec<pb::DeviceConfigurationProto>,
}

impl Model {
    /// The imported opset version of `domain` (`""` and `"ai.onnx"` are the same domain).
    pub fn opset(&self, domain: &str) -> Option<i64> {
        let want = canonical_domain(domain);
        self.opset_imports
            .iter()
            .find(|o| canonical_domain(&o.domain) == want)
            .map(|o| o.version)
    }

    /// Imports `domain` at `version` unless it is already imported.
    pub fn ensure_opset(&mut self, domain: &str, version: i64) {
        if self.opset(domain).is_none() {
            self.opset_imports.push(OpsetImport {
                domain: domain.to_string(),
                version,
            });
        }
    }

    /// Imports `domain` at `version` or above: adds the import when it is missing and raises
    /// an older version (some exporters write `com.microsoft` at version 0, which ONNX Runtime
    /// does not resolve).
    pub fn require_opset(&mut self, domain: &str, version: i64) {
        let want = canonical_domain(domain);
        match self
            .opset_imports
            .iter_mut()
            .find(|o| canonical_domain(&o.domain) == want)
        {
            Some(import) => import.version = import.version.max(version),
            None => self.opset_imports.push(OpsetImport {
                domain: domain.to_string(),
                version,
            }),
        }
    }

    /// A copy of the model's fields around `graph`, which replaces the main graph (the
    /// current graph is not cloned).
    pub fn clone_with_graph(&self, graph: Graph) -> Model {
        Model {
            ir_version: self.ir_version,
            opset_imports: self.opset_imports.clone(),
            producer_name: self.producer_name.clone(),
            producer_version: self.producer_version.clone(),
            domain: self.domain.clone(),
            model_version: self.model_version,
            doc_string: self.doc_string.clone(),
            graph,
            metadata_props: self.metadata_props.clone(),
            training_info: self.training_info.clone(),
            functions: self.functions.clone(),
            configuration: self.configuration.clone(),
        }
    }

    /// A metadata entry by key.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata_props
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn canonical_domain(d: &str) -> &str {
    if d == "ai.onnx" { "" } else { d }
}
