//! The `gyre` binary: a thin wrapper around [`cli::run`].

mod cli;

fn main() -> std::process::ExitCode {
    cli::run()
}
