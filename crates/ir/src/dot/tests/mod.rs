//! Unit tests of the Graphviz view.

#![allow(clippy::unwrap_used)]

mod layers;
mod render;
