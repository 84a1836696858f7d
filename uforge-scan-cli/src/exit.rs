//! How a command ends: its exit status, and its error on one line.

use std::process::ExitCode;

/// The exit status of a command's `result`; an error is printed as `PROGRAM: error: ...` with
/// each cause once. With `lenient`, a reader that closed our standard output (`| head`) is not
/// an error worth reporting.
pub fn finish(program: &str, result: anyhow::Result<()>, lenient: bool) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if lenient && is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "{program}: error: {}",
                uforge_core::error::chain(e.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || matches!(c.downcast_ref::<uforge_core::Error>(),
                Some(uforge_core::Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
