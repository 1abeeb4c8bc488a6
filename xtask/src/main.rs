//! `cargo xtask <command>`: the project's command line.
//!
//! Each subcommand lives in its own module and is registered in [`Command`].

mod models;
mod optimize;
mod paths;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "transfuse: fuse transformer ONNX graphs for ONNX Runtime")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Optimize a model (default: a bundled tiny BERT, written under target/).
    Optimize(optimize::Args),
    /// Materialize the base-size skeleton models into full benchmark models under target/models.
    Models(models::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Optimize(a) => optimize::run(a),
        Command::Models(a) => models::run(a),
    };
    if let Err(e) = result {
        // One line per cause, outermost first.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
