//! Value names of the written graph.
//!
//! Every e-class that held an original value keeps that value's name (pins first, then the
//! first original name when several merged); leaves keep their own names; new values get
//! fresh names that collide with nothing in the input.

use std::collections::{HashMap, HashSet};

use egg::Id;
use transfuse_ir::Graph;

use crate::analysis::EGraph;
use crate::import::Imported;
use crate::lang::Onnx;
use crate::tensors::TensorOrigin;

/// Fresh, unique names.
pub(super) struct Names {
    taken: HashSet<String>,
    counter: usize,
}

impl Names {
    /// A name no value or node of the input uses, and none handed out before.
    pub(super) fn fresh(&mut self, stem: &str) -> String {
        loop {
            let name = format!("{stem}_fused_{}", self.counter);
            self.counter += 1;
            if self.taken.insert(name.clone()) {
                return name;
            }
        }
    }
}

/// The name each e-class carries, filled lazily with fresh names for new values.
pub(super) struct ClassNames<'a> {
    egraph: &'a EGraph,
    by_class: HashMap<Id, String>,
    /// Names given to classes before emission (original and leaf names): an unused output
    /// slot may keep its original name only when no class carries it.
    assigned: HashSet<String>,
    pub(super) names: Names,
}

impl<'a> ClassNames<'a> {
    /// Names of leaves, pinned values and original values among the extracted classes.
    pub(super) fn new(
        graph: &Graph,
        imported: &Imported,
        egraph: &'a EGraph,
        choice: &HashMap<Id, Onnx>,
    ) -> ClassNames<'a> {
        let find = |id: Id| egraph.find(id);
        let mut names = Names {
            taken: HashSet::new(),
            counter: 0,
        };
        for (name, _) in &imported.names {
            names.taken.insert(name.clone());
        }
        for n in &graph.nodes {
            names.taken.insert(n.name.clone());
            names.taken.extend(n.outputs.iter().cloned());
        }
        let mut by_class: HashMap<Id, String> = HashMap::new();
        // Leaves keep their own names (an input or initializer is its name).
        for (&id, node) in choice {
            match node {
                Onnx::Input(s) => {
                    by_class.insert(id, s.as_str().to_string());
                }
                Onnx::Const(t) => {
                    if let Some(e) = egraph.analysis.tensors.get(*t)
                        && e.origin == TensorOrigin::Initializer
                    {
                        by_class.insert(id, e.tensor.name.clone());
                    }
                }
                _ => {}
            }
        }
        for (id, name) in &imported.pinned {
            by_class.entry(find(*id)).or_insert_with(|| name.clone());
        }
        for (name, id) in &imported.names {
            let id = find(*id);
            if choice.contains_key(&id) {
                by_class.entry(id).or_insert_with(|| name.clone());
            }
        }
        let assigned = by_class.values().cloned().collect();
        ClassNames {
            egraph,
            by_class,
            assigned,
            names,
        }
    }

    /// The name of class `id`, a fresh one from `stem` the first time a new value is named.
    pub(super) fn of(&mut self, id: Id, stem: &str) -> String {
        let id = self.egraph.find(id);
        if let Some(n) = self.by_class.get(&id) {
            return n.clone();
        }
        let name = self.names.fresh(stem);
        self.by_class.insert(id, name.clone());
        name
    }

    /// The name of class `id` when it has one.
    pub(super) fn get(&self, id: Id) -> Option<&String> {
        self.by_class.get(&self.egraph.find(id))
    }

    /// Every named class with its name.
    pub(super) fn named(&self) -> impl Iterator<Item = (Id, &String)> {
        self.by_class.iter().map(|(id, name)| (*id, name))
    }

    /// Sets the name of class `id`.
    pub(super) fn set(&mut self, id: Id, name: String) {
        self.by_class.insert(self.egraph.find(id), name);
    }

    /// A name for output slot `slot` of a multi-output node when nothing reads it: the
    /// original output's name when it had one that no written value carries, else a fresh
    /// name. Never `""` for an output the input declared (ONNX Runtime 1.31.1 crashes on a
    /// `Split` whose unused outputs are blank).
    pub(super) fn unused_output(&mut self, original: Option<&str>, stem: &str) -> String {
        match original {
            Some(o) if !o.is_empty() && !self.assigned.contains(o) => {
                self.assigned.insert(o.to_string());
                o.to_string()
            }
            _ => self.names.fresh(stem),
        }
    }
}
