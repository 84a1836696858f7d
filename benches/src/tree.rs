//! Creates a synthetic tree of many small files, for memory benchmarks of the scanner.
//!
//! `uforge-bench-tree DIR FILES` makes FILES files of a few dozen bytes each, 1,000 per
//! directory. It writes `DIR.done` when finished so an interrupted run is not taken as whole.

use std::io::Write;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("usage: uforge-bench-tree DIR FILES"));
    let files: u64 = args
        .next()
        .and_then(|n| n.parse().ok())
        .expect("usage: uforge-bench-tree DIR FILES");
    let per_dir = 1000;
    for i in 0..files {
        let sub = dir.join(format!("d{:05}", i / per_dir));
        if i % per_dir == 0 {
            std::fs::create_dir_all(&sub)?;
        }
        let mut f = std::fs::File::create(sub.join(format!("f{i:08}.txt")))?;
        writeln!(f, "synthetic file {i} for the uforge memory benchmark")?;
    }
    std::fs::File::create(dir.with_extension("done"))?;
    Ok(())
}
