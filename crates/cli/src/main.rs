//! `transfuse`: optimize transformer ONNX models for ONNX Runtime, and check parity.

use clap::Parser;

fn main() {
    install_signal_handlers();
    // Usage errors exit with status 2, `--help` and `--version` with 0 (clap's convention).
    let cli = transfuse_cli::Cli::parse();
    if let Err(e) = transfuse_cli::run(cli) {
        let code = transfuse_cli::exit_code(&e);
        transfuse_ir::remove_staged_files();
        if !transfuse_cli::is_broken_pipe(&e) {
            eprintln!("error: {}", transfuse_cli::error_message(&e));
        }
        std::process::exit(code);
    }
}

/// On SIGINT or SIGTERM: remove the temporary files of a save in progress and exit with
/// 128 + the signal number (130, 143). A watcher thread handles the signal, so the removal
/// runs outside signal context.
fn install_signal_handlers() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    match signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) {
        Ok(mut signals) => {
            std::thread::spawn(move || {
                if let Some(signal) = signals.forever().next() {
                    transfuse_ir::remove_staged_files();
                    std::process::exit(128 + signal);
                }
            });
        }
        Err(e) => eprintln!(
            "warning: cannot handle interrupts ({e}); an interrupted save may leave temporary files"
        ),
    }
}
