//! Fresh value names for the passes that edit a written graph (`float16`, `int32_inputs`).

use std::collections::HashSet;

use transfuse_ir::Graph;

/// Names that collide with no input, output, `value_info` entry, initializer or node output
/// of the graph they were made for, nor with each other.
pub(crate) struct FreshNames {
    taken: HashSet<String>,
}

impl FreshNames {
    /// Every name `graph` already uses is taken.
    pub(crate) fn new(graph: &Graph) -> FreshNames {
        let mut taken: HashSet<String> = graph.inputs.iter().map(|v| v.name.clone()).collect();
        taken.extend(graph.outputs.iter().map(|v| v.name.clone()));
        taken.extend(graph.value_info.iter().map(|v| v.name.clone()));
        taken.extend(graph.initializers.keys().cloned());
        for n in &graph.nodes {
            taken.extend(n.outputs.iter().cloned());
        }
        FreshNames { taken }
    }

    /// `base` if it is free, else `base_1`, `base_2`, ...; the name is taken from then on.
    pub(crate) fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut k = 1;
        while self.taken.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        self.taken.insert(name.clone());
        name
    }
}
