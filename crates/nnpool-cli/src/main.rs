fn main() -> std::process::ExitCode {
    nnpool_cli::run_cli()
}
