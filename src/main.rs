use std::process::ExitCode;

fn main() -> ExitCode {
    librarian::cli::main()
}
