use std::process::ExitCode;

fn main() -> ExitCode {
    match cherrypick::cli::run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
