//! The `cronlease` command-line tool.
fn main() -> std::process::ExitCode {
    cronlease::cli::main()
}
