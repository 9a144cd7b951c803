use std::process::ExitCode;

// mimalloc: the request path allocates many small, short-lived buffers; it cuts allocator time there
// (and in the encoder's tensor buffers) compared to glibc malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match cherrypick::cli::run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
