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
