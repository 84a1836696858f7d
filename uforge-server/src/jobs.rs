//! Image generation jobs: worker threads that claim queued jobs from the database and build
//! them with [`uforge_core::image::build`].
//!
//! A job is a row of the `images` table. The API queues it; any worker of any server process
//! sharing the database may claim it (see [`queries::claim_image`]). While a job builds, its
//! progress and a heartbeat are written at most about once a second by a thread beside the
//! build, so the build's own threads never wait on the database. Each row names the process
//! that holds it (`HOST/BOOT/PID/N`); a job whose process is gone (it died, or the machine
//! rebooted) is marked failed by the next server to look: at start, and from time to time by
//! idle workers.
//!
//! A build writes under `DATA/work/images/ID` (removed afterwards, whatever happened) and into
//! `DATA/images/ID/NAME.EXT`; a failed job leaves no image behind, only the whole output of
//! the step that failed in `DATA/logs/images/ID.log` (its error names that file), which goes
//! with the image's record.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use uforge_core::blobstore::LocalBlobStore;
use uforge_core::error::chain;
use uforge_core::image::chroot::remove_tree;
use uforge_core::image::cmd::FailureLog;
use uforge_core::image::{naming, BuildSpec, Format, NetworkPolicy, Target};
use uforge_core::progress::Progress;
use uforge_core::repo::Sources;
use uforge_core::report::ReportReader;

use crate::datadir::DataDir;
use crate::db::models::{Image, PublicationRow};
use crate::db::publish as pubq;
use crate::db::queries::{self, image_status, ImageProgress};
use crate::db::{now, Conn, Db};
use crate::sealing::SealingKey;

/// How long an idle worker sleeps before looking for jobs queued by other processes (jobs
/// queued by this one wake it at once).
const POLL: Duration = Duration::from_secs(2);

/// Progress is written at most this often.
const FLUSH: Duration = Duration::from_secs(1);

/// A running job's row is touched at least this often, progress or not.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// A running job whose row has not been touched for this long belongs to a process that is
/// gone or wedged. Many heartbeats long, so that a slow database does not fail live jobs.
pub const STALE: Duration = Duration::from_secs(120);

/// How often idle workers look for jobs of dead processes.
const REAP_EVERY: Duration = Duration::from_secs(60);

/// Why a job failed whose process a server found gone when it started.
pub const RESTARTED: &str = "interrupted: server restarted";

/// Why the jobs running when this server stopped failed.
const STOPPED: &str = "interrupted: server stopped";

/// Which process this is, as written in the `worker` column: the host, the boot (a pid means
/// nothing across reboots) and the pid.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    host: String,
    boot: String,
    pid: u32,
}

impl Identity {
    fn current() -> Self {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let host = read("/proc/sys/kernel/hostname");
        let boot = read("/proc/sys/kernel/random/boot_id");
        Identity {
            host: if host.is_empty() {
                "localhost".into()
            } else {
                host
            },
            // The first group of the boot id is plenty to tell boots apart.
            boot: boot.split('-').next().unwrap_or_default().to_string(),
            pid: std::process::id(),
        }
    }

    /// The `worker` value of this process's `n`th worker.
    fn worker(&self, n: usize) -> String {
        format!("{}/{}/{}/{n}", self.host, self.boot, self.pid)
    }

    /// The process part of a `worker` value.
    fn of_worker(worker: &str) -> Option<Identity> {
        let mut it = worker.split('/');
        let (host, boot, pid) = (it.next()?, it.next()?, it.next()?.parse().ok()?);
        Some(Identity {
            host: host.to_string(),
            boot: boot.to_string(),
            pid,
        })
    }

    fn same_machine(&self, other: &Identity) -> bool {
        self.host == other.host && self.boot == other.boot
    }
}

/// Whether a process exists (it may belong to someone else: that still means "not dead").
fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// What the workers share.
struct Ctx {
    db: Db,
    data: DataDir,
    blobs: Arc<LocalBlobStore>,
    /// Keyring for repositories that name none.
    keyring: Option<PathBuf>,
    me: Identity,
    /// Seals and opens target credentials.
    key: Arc<SealingKey>,
    /// Jobs this process is building: id to worker value.
    running: Mutex<HashMap<i64, String>>,
    /// Publications this process is sending: id to worker value.
    publishing: Mutex<HashMap<i64, String>>,
    /// Bumped to wake idle workers.
    wake: Mutex<u64>,
    woken: Condvar,
    stop: AtomicBool,
    /// When the last periodic check for dead processes' jobs ran (ms since `epoch`).
    last_reap: AtomicU64,
    epoch: Instant,
}

/// The image workers of this process.
pub struct Jobs {
    ctx: Arc<Ctx>,
    workers: usize,
}

impl Jobs {
    /// Fails the jobs that dead processes left running, clears what they left on disk, and
    /// starts `workers` image worker threads and as many publication workers (none with 0:
    /// this process then only queues jobs).
    pub fn start(
        db: Db,
        data: DataDir,
        blobs: Arc<LocalBlobStore>,
        keyring: Option<PathBuf>,
        key: Arc<SealingKey>,
        workers: usize,
    ) -> Result<Jobs> {
        let ctx = Arc::new(Ctx {
            db,
            data,
            blobs,
            keyring,
            key,
            me: Identity::current(),
            running: Mutex::new(HashMap::new()),
            publishing: Mutex::new(HashMap::new()),
            wake: Mutex::new(0),
            woken: Condvar::new(),
            stop: AtomicBool::new(false),
            last_reap: AtomicU64::new(0),
            epoch: Instant::now(),
        });
        let failed = reap(&ctx, RESTARTED).context("cannot check the image jobs left running")?;
        if failed > 0 {
            tracing::warn!(
                jobs = failed,
                "image jobs left running by a stopped server marked failed"
            );
        }
        clear_leftovers(&ctx).context("cannot clear what earlier image jobs left")?;
        let failed = reap_publications(&ctx, RESTARTED)
            .context("cannot check the publication jobs left running")?;
        if failed > 0 {
            tracing::warn!(
                jobs = failed,
                "publication jobs left running by a stopped server marked failed"
            );
        }
        clear_publication_leftovers(&ctx)
            .context("cannot clear what earlier publication jobs left")?;
        for n in 0..workers {
            let ctx = ctx.clone();
            std::thread::Builder::new()
                .name(format!("image-worker-{n}"))
                .spawn(move || worker_loop(&ctx, n, Queue::Images))
                .context("cannot start an image worker thread")?;
        }
        for n in workers..2 * workers {
            let ctx = ctx.clone();
            std::thread::Builder::new()
                .name(format!("publish-worker-{n}"))
                .spawn(move || worker_loop(&ctx, n, Queue::Publications))
                .context("cannot start a publication worker thread")?;
        }
        Ok(Jobs { ctx, workers })
    }

    /// Tells idle workers that a job was queued.
    pub fn wake(&self) {
        if self.workers == 0 {
            return;
        }
        let mut g = self.ctx.wake.lock().unwrap_or_else(|p| p.into_inner());
        *g = g.wrapping_add(1);
        self.ctx.woken.notify_all();
    }

    /// Stops claiming jobs and marks the ones this process is building failed: a build cannot
    /// be resumed, and the process is about to end under it.
    pub fn shutdown(&self) {
        self.ctx.stop.store(true, Ordering::SeqCst);
        self.ctx.woken.notify_all();
        let running: Vec<(i64, String)> = self
            .ctx
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(id, w)| (*id, w.clone()))
            .collect();
        for (id, worker) in running {
            let failed = self
                .ctx
                .db
                .get()
                .and_then(|mut c| Ok(queries::fail_image(&mut c, id, &worker, STOPPED)?));
            match failed {
                Ok(true) => {
                    tracing::warn!(image = id, "image job interrupted by the stop");
                    remove_job_files(&self.ctx.data, id, true);
                }
                // It ended on its own in the meantime: what it recorded stands.
                Ok(false) => {}
                // Left running: the next server to start here marks it failed and clears up.
                Err(e) => tracing::error!(image = id, "cannot mark the image job failed: {e:#}"),
            }
        }
        let publishing: Vec<(i64, String)> = self
            .ctx
            .publishing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(id, w)| (*id, w.clone()))
            .collect();
        for (id, worker) in publishing {
            // What was sent stays at the target with its resume points: a retry resumes.
            let failed = self.ctx.db.get().and_then(|mut c| {
                Ok(pubq::fail_publication(
                    &mut c,
                    id,
                    &worker,
                    STOPPED,
                    Some("interrupted"),
                )?)
            });
            if let Err(e) = failed {
                tracing::error!(
                    publication = id,
                    "cannot mark the publication failed: {e:#}"
                );
            }
        }
    }
}

/// Which table a worker takes jobs from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queue {
    Images,
    Publications,
}

/// Marks failed every running job whose process is gone: on this machine, a pid that no longer
/// exists (or is this very process, which holds nothing it does not know of); anywhere, a row
/// untouched for [`STALE`]. `dead_message` is the error of the first kind. Returns how many.
fn reap(ctx: &Ctx, dead_message: &str) -> Result<usize> {
    let mut c = ctx.db.get()?;
    let jobs = queries::running_images(&mut c)?;
    let mut failed = 0;
    for job in jobs {
        let worker = job.worker.clone().unwrap_or_default();
        let mine = ctx
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&job.id);
        let Some(message) = verdict(
            ctx,
            &worker,
            mine,
            job.heartbeat_at.or(job.started_at),
            dead_message,
        ) else {
            continue;
        };
        // Only if the row still names the worker judged dead: a live process may have moved on.
        if queries::fail_image(&mut c, job.id, &worker, &message)? {
            tracing::warn!(image = job.id, worker, "{message}");
            remove_job_files(&ctx.data, job.id, true);
            failed += 1;
        }
    }
    Ok(failed)
}

/// The same for publications: their resume points stay, so that a retry resumes.
fn reap_publications(ctx: &Ctx, dead_message: &str) -> Result<usize> {
    let mut c = ctx.db.get()?;
    let jobs = pubq::running_publications(&mut c)?;
    let mut failed = 0;
    for job in jobs {
        let worker = job.worker.clone().unwrap_or_default();
        let mine = ctx
            .publishing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&job.id);
        let Some(message) = verdict(
            ctx,
            &worker,
            mine,
            job.heartbeat_at.or(job.started_at),
            dead_message,
        ) else {
            continue;
        };
        if pubq::fail_publication(&mut c, job.id, &worker, &message, Some("interrupted"))? {
            tracing::warn!(publication = job.id, worker, "{message}");
            failed += 1;
        }
    }
    Ok(failed)
}

/// Why a running job held by `worker` is to be failed, if it is: its process is gone, or it
/// sent no heartbeat for [`STALE`]. `mine`: this process runs it.
fn verdict(
    ctx: &Ctx,
    worker: &str,
    mine: bool,
    last_sign: Option<chrono::NaiveDateTime>,
    dead_message: &str,
) -> Option<String> {
    let dead = match Identity::of_worker(worker) {
        Some(o) if ctx.me.same_machine(&o) => {
            if o.pid == ctx.me.pid {
                !mine
            } else {
                !process_exists(o.pid)
            }
        }
        _ => false,
    };
    let silent = last_sign
        .map(|t| (now() - t).to_std().unwrap_or_default() > STALE)
        .unwrap_or(true);
    if dead {
        Some(dead_message.to_string())
    } else if silent && !mine {
        Some(format!(
            "interrupted: the server running it ({worker}) stopped answering: no heartbeat \
             for more than {} s",
            STALE.as_secs()
        ))
    } else {
        None
    }
}

/// Removes scratch directories of jobs no longer building, and image directories of jobs
/// that failed or no longer exist: what a process that died mid-build, or a deletion whose
/// file removal failed, left behind.
fn clear_leftovers(ctx: &Ctx) -> Result<()> {
    let work = ids_in(&ctx.data.image_work_root())?;
    let images = ids_in(&ctx.data.images())?;
    let logs: Vec<i64> = {
        let dir = ctx.data.image_logs();
        let rd =
            std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?;
        let mut out = Vec::new();
        for e in rd {
            let e = e.with_context(|| format!("cannot list {}", dir.display()))?;
            let name = e.file_name();
            if let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".log"))
                .and_then(|n| n.parse::<i64>().ok())
            {
                out.push(id);
            }
        }
        out
    };
    let mut all: Vec<i64> = work.iter().chain(&images).chain(&logs).copied().collect();
    all.sort_unstable();
    all.dedup();
    if all.is_empty() {
        return Ok(());
    }
    let status: HashMap<i64, String> = queries::image_statuses(&mut *ctx.db.get()?, &all)?
        .into_iter()
        .collect();
    for id in work {
        if status.get(&id).map(String::as_str) != Some(image_status::RUNNING) {
            remove_logged(&ctx.data.image_work(id));
        }
    }
    for id in images {
        let keep = matches!(
            status.get(&id).map(String::as_str),
            Some(image_status::RUNNING | image_status::DONE)
        );
        if !keep {
            remove_logged(&ctx.data.image_dir(id));
        }
    }
    // A log is evidence for as long as its job's record lasts.
    for id in logs {
        if !status.contains_key(&id) {
            remove_log(&ctx.data, id);
        }
    }
    Ok(())
}

/// The job ids that name entries of `dir` (other entries are not the jobs' to judge).
fn ids_in(dir: &Path) -> Result<Vec<i64>> {
    let mut out = Vec::new();
    let rd = std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for e in rd {
        let e = e.with_context(|| format!("cannot list {}", dir.display()))?;
        if let Some(id) = e.file_name().to_str().and_then(|n| n.parse::<i64>().ok()) {
            out.push(id);
        }
    }
    Ok(out)
}

/// Removes the resume points of publications that are done or no longer exist: what a
/// process that died between recording the end and clearing up, or a deletion whose removal
/// failed, left behind. Those of failed and queued publications stay: a retry resumes from
/// them.
fn clear_publication_leftovers(ctx: &Ctx) -> Result<()> {
    let work = ids_in(&ctx.data.publication_work_root())?;
    if work.is_empty() {
        return Ok(());
    }
    let status: HashMap<i64, String> = pubq::publication_statuses(&mut *ctx.db.get()?, &work)?
        .into_iter()
        .collect();
    for id in work {
        let keep = match status.get(&id).map(String::as_str) {
            None => false,
            Some(s) => s != image_status::DONE,
        };
        if !keep {
            remove_logged(&ctx.data.publication_work(id));
        }
    }
    Ok(())
}

/// Removes everything an image job left on disk: scratch space, image and failure log. For a
/// deleted job.
pub fn remove_image_files(data: &DataDir, id: i64) {
    remove_job_files(data, id, true);
    remove_log(data, id);
}

fn remove_log(data: &DataDir, id: i64) {
    let log = data.image_log(id);
    match std::fs::remove_file(&log) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::error!("cannot remove {}: {e}", log.display()),
    }
}

/// Removes a job's scratch directory and, when `output` is set, its image directory.
pub fn remove_job_files(data: &DataDir, id: i64, output: bool) {
    remove_logged(&data.image_work(id));
    if output {
        remove_logged(&data.image_dir(id));
    }
}

fn remove_logged(dir: &Path) {
    if let Err(e) = remove_tree(dir) {
        tracing::error!("{}", chain(&e));
    }
}

fn worker_loop(ctx: &Arc<Ctx>, n: usize, queue: Queue) {
    let worker = ctx.me.worker(n);
    let mut seen = *ctx.wake.lock().unwrap_or_else(|p| p.into_inner());
    while !ctx.stop.load(Ordering::SeqCst) {
        let ran = match queue {
            Queue::Images => ctx
                .db
                .get()
                .and_then(|mut c| Ok(queries::claim_image(&mut c, &worker)?))
                .map(|job| job.map(|job| run_job(ctx, &worker, job)).is_some()),
            Queue::Publications => ctx
                .db
                .get()
                .and_then(|mut c| Ok(pubq::claim_publication(&mut c, &worker)?))
                .map(|job| job.map(|job| run_publication(ctx, &worker, job)).is_some()),
        };
        match ran {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::error!(worker, "cannot look for jobs: {e:#}"),
        }
        reap_now_and_then(ctx);
        let g = ctx.wake.lock().unwrap_or_else(|p| p.into_inner());
        let (g, _) = ctx
            .woken
            .wait_timeout_while(g, POLL, |w| *w == seen && !ctx.stop.load(Ordering::SeqCst))
            .unwrap_or_else(|p| p.into_inner());
        seen = *g;
    }
}

/// Runs [`reap`] if no worker of this process did for [`REAP_EVERY`].
fn reap_now_and_then(ctx: &Ctx) {
    let now = ctx.epoch.elapsed().as_millis() as u64;
    let last = ctx.last_reap.load(Ordering::SeqCst);
    let due = last == 0 || now.saturating_sub(last) >= REAP_EVERY.as_millis() as u64;
    if !due
        || ctx
            .last_reap
            .compare_exchange(last, now.max(1), Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
    {
        return;
    }
    match reap(ctx, "interrupted: the server process running it ended") {
        Ok(0) => {}
        Ok(n) => tracing::warn!(jobs = n, "image jobs of stopped servers marked failed"),
        Err(e) => tracing::error!("cannot check for abandoned image jobs: {e:#}"),
    }
    match reap_publications(ctx, "interrupted: the server process running it ended") {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            jobs = n,
            "publication jobs of stopped servers marked failed"
        ),
        Err(e) => tracing::error!("cannot check for abandoned publication jobs: {e:#}"),
    }
}

/// Builds one claimed job and records how it ended.
fn run_job(ctx: &Arc<Ctx>, worker: &str, job: Image) {
    let id = job.id;
    ctx.running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id, worker.to_string());
    tracing::info!(
        image = id,
        scan = job.scan_id,
        format = job.format,
        target = job.target,
        "image job started"
    );
    // A log from an earlier attempt would mix with this one's.
    remove_log(&ctx.data, id);
    let log = ctx.data.image_log(id);
    let outcome = {
        let _kept = FailureLog::keep_in(&log);
        build_job(ctx, worker, &job)
    };
    if outcome.is_ok() {
        // Commands a build tolerates failing (a probe, a first unmount) leave sections too.
        remove_log(&ctx.data, id);
    }
    let outcome = outcome.map_err(|message| with_log(message, &log, id));
    remove_job_files(&ctx.data, id, outcome.is_err());
    let recorded = ctx.db.get().and_then(|mut c| {
        Ok(match &outcome {
            Ok(done) => queries::finish_image(
                &mut c,
                id,
                worker,
                done.size,
                &done.sha256,
                &done.tuning_log,
            )?,
            Err(message) => queries::fail_image(&mut c, id, worker, message)?,
        })
    });
    match (&outcome, recorded) {
        (Ok(done), Ok(true)) => {
            tracing::info!(image = id, size = done.size, "image job done")
        }
        (Err(message), Ok(true)) => tracing::warn!(image = id, "image job failed: {message}"),
        (_, Ok(false)) => {
            // Taken away while it built (its heartbeats stopped reaching the database and
            // another server failed it): what it made must not outlive that verdict.
            tracing::warn!(
                image = id,
                "image job was failed elsewhere; its result is dropped"
            );
            remove_logged(&ctx.data.image_dir(id));
        }
        (_, Err(e)) => {
            tracing::error!(image = id, "cannot record the end of the image job: {e:#}");
            remove_logged(&ctx.data.image_dir(id));
        }
    }
    ctx.running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
}

/// A failed job's error, naming the log of the step that failed when one was kept. The error
/// itself ends with the tool's last lines; the log has all of them.
fn with_log(message: String, log: &Path, id: i64) -> String {
    if log.is_file() {
        format!(
            "{message}\nthe whole output of the failed step: {} (`uforge image log {id}`)",
            log.display()
        )
    } else {
        message
    }
}

/// What a successful build leaves to record.
struct Done {
    size: i64,
    sha256: String,
    tuning_log: String,
}

/// Prepares and runs the build of a job; the error is the job's `error` text.
fn build_job(ctx: &Ctx, worker: &str, job: &Image) -> Result<Done, String> {
    let id = job.id;
    let format: Format = job.format.parse().map_err(|e| chain(&e))?;
    let target: Target = job.target.parse().map_err(|e| chain(&e))?;
    let network: NetworkPolicy = job.network.parse().map_err(|e| chain(&e))?;
    let scan = job
        .scan_id
        .ok_or_else(|| "its scan was deleted before the build started".to_string())?;
    let report = ctx.data.report(scan);
    let (user, sources) = {
        let mut c = ctx.db.get().map_err(|e| format!("{e:#}"))?;
        let (user, admin) = queries::user_name_admin(&mut c, job.user_id)
            .map_err(|e| format!("database error: {e}"))?
            .ok_or_else(|| format!("user {} no longer exists", job.user_id))?;
        // The repositories analyses use: what the overlay was cut against.
        let sources = queries::synced_repo_lines(&mut c, job.user_id)
            .map_err(|e| format!("database error: {e}"))?;
        crate::repo_policy::check_lines(&sources, admin)?;
        (user, sources)
    };
    let sources = Sources {
        lines: sources,
        files: Vec::new(),
        local: vec![
            crate::pipeline::release_repo(&ctx.data.user_repo(&user), &report)
                .map_err(|e| chain(&e))?,
        ],
        keyring: ctx.keyring.clone(),
        cache_dir: Some(ctx.data.cache()),
    };
    let file = image_file(&report, format, scan);
    let (work, dir) = (ctx.data.image_work(id), ctx.data.image_dir(id));
    for d in [&work, &dir] {
        remove_tree(d).map_err(|e| chain(&e))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let output = dir.join(&file);
    let held = ctx
        .db
        .get()
        .and_then(|mut c| Ok(queries::set_image_file(&mut c, id, worker, &file)?))
        .map_err(|e| format!("{e:#}"))?;
    if !held {
        return Err("the job was taken away before it started".into());
    }

    let spec = BuildSpec {
        report: &report,
        blobs: &*ctx.blobs,
        sources: &sources,
        format,
        target: Some(target),
        network,
        work_dir: &work,
        output: &output,
        extra_outputs: Vec::new(),
        allow_upgrades: job.allow_upgrades,
    };
    let tracker = Tracker::default();
    let finished = (Mutex::new(false), Condvar::new());
    let built = std::thread::scope(|s| {
        s.spawn(|| {
            flush_progress(
                ctx,
                id,
                &tracker,
                &finished,
                &|c: &mut Conn, p: &ImageProgress| queries::record_image_progress(c, id, worker, p),
            )
        });
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
            uforge_core::image::build(&spec, &tracker)
        }));
        *finished.0.lock().unwrap_or_else(|p| p.into_inner()) = true;
        finished.1.notify_all();
        r
    });
    let result = match built {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(chain(&e)),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("no message");
            return Err(format!("the image build crashed: {what}"));
        }
    };
    // The build reports where it wrote; the file must be the one the job serves.
    if !output.is_file() {
        return Err(format!(
            "the build reported success but {} does not exist",
            output.display()
        ));
    }
    crate::datadir::private_tree(&dir, None, &mut 0).map_err(|e| format!("{e:#}"))?;
    let tuning_log = serde_json::to_string(&result.tuning_log)
        .map_err(|e| format!("cannot encode the tuning log: {e}"))?;
    Ok(Done {
        size: i64::try_from(result.size).unwrap_or(i64::MAX),
        sha256: result.sha256,
        tuning_log,
    })
}

/// Sends one claimed publication and records how it ended.
fn run_publication(ctx: &Arc<Ctx>, worker: &str, job: PublicationRow) {
    let id = job.id;
    ctx.publishing
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id, worker.to_string());
    tracing::info!(
        publication = id,
        image = job.image_id,
        target = job.target_id,
        "publication started"
    );
    let outcome = publish_job(ctx, worker, &job);
    let recorded = ctx.db.get().and_then(|mut c| {
        Ok(match &outcome {
            Ok(result) => pubq::finish_publication(&mut c, id, worker, result)?,
            Err((message, kind)) => {
                pubq::fail_publication(&mut c, id, worker, message, kind.as_deref())?
            }
        })
    });
    match (&outcome, recorded) {
        (Ok(_), Ok(true)) => {
            // Nothing left to resume.
            remove_logged(&ctx.data.publication_work(id));
            tracing::info!(publication = id, "publication done")
        }
        (Err((message, _)), Ok(true)) => {
            tracing::warn!(publication = id, "publication failed: {message}")
        }
        (_, Ok(false)) => tracing::warn!(
            publication = id,
            "publication was failed elsewhere; its result is dropped"
        ),
        (_, Err(e)) => {
            tracing::error!(
                publication = id,
                "cannot record the end of the publication: {e:#}"
            )
        }
    }
    ctx.publishing
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
}

/// Publishes the image of a job to its target; the record's JSON, or the job's error text and
/// the kind of failure.
fn publish_job(
    ctx: &Ctx,
    worker: &str,
    job: &PublicationRow,
) -> Result<String, (String, Option<String>)> {
    use uforge_core::publish::{self, DirCheckpoints, InstanceSpec, PublishRequest};
    let plain = |m: String| (m, None);
    let db_error = |e: anyhow::Error| plain(format!("{e:#}"));
    let (target, image) = {
        let mut c = ctx.db.get().map_err(db_error)?;
        let target = pubq::target_by_id(&mut c, job.target_id)
            .map_err(|e| plain(format!("database error: {e}")))?
            .ok_or_else(|| plain("its target was deleted".into()))?;
        let image_id = job
            .image_id
            .ok_or_else(|| plain("its image was deleted before it was sent".into()))?;
        let image = pubq::image_file(&mut c, job.user_id, image_id)
            .map_err(|e| plain(format!("database error: {e}")))?
            .ok_or_else(|| plain(format!("image {image_id} no longer exists")))?;
        (target, (image_id, image))
    };
    let (image_id, (format, file, sha256, status)) = image;
    let stored = crate::publishing::open_target(&ctx.key, &target).map_err(plain)?;
    let (Some(file), image_status::DONE) = (file, status.as_str()) else {
        return Err(plain(format!("image {image_id} is {status}, not done")));
    };
    let format: Format = format.parse().map_err(|e| plain(chain(&e)))?;
    let instance: Option<InstanceSpec> = match &job.instance {
        Some(j) => {
            Some(serde_json::from_str(j).map_err(|e| plain(format!("bad stored instance: {e}")))?)
        }
        None => None,
    };
    let path = ctx.data.image_dir(image_id).join(&file);
    let checkpoints = DirCheckpoints::new(ctx.data.publication_work(job.id)).map_err(|e| {
        plain(format!(
            "cannot create {}: {e}",
            ctx.data.publication_work(job.id).display()
        ))
    })?;
    let mut request = PublishRequest::new(&path, format);
    request.name = job.name.clone();
    request.sha256 = sha256;
    request.instance = instance;
    request.checkpoints = &checkpoints;
    request.cancel = Some(&ctx.stop);
    request.retries = 2;

    let tracker = Tracker::default();
    let finished = (Mutex::new(false), Condvar::new());
    let id = job.id;
    let sent = std::thread::scope(|s| {
        s.spawn(|| {
            flush_progress(
                ctx,
                id,
                &tracker,
                &finished,
                &|c: &mut Conn, p: &ImageProgress| pubq::record_progress(c, id, worker, p),
            )
        });
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
            publish::publish(&stored.spec, stored.credentials, &request, &tracker)
        }));
        *finished.0.lock().unwrap_or_else(|p| p.into_inner()) = true;
        finished.1.notify_all();
        r
    });
    let publication = match sent {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            return Err((
                crate::publishing::error_text(&target.name, &e),
                Some(e.kind.name().to_string()),
            ))
        }
        Err(_) => return Err(plain(format!("target {}: publishing crashed", target.name))),
    };
    serde_json::to_string(&publication).map_err(|e| plain(format!("cannot encode: {e}")))
}

/// The image's file name: the scanned host name when it makes a safe file name, `scan-ID`
/// otherwise, and the format's extension.
fn image_file(report: &Path, format: Format, scan: i64) -> String {
    let machine = ReportReader::open(report)
        .map(|r| r.header().machine.clone())
        .unwrap_or_default();
    naming::file_name(&machine, format, &format!("scan-{scan}"))
}

/// Progress of one build, kept in memory for [`flush_progress`]. The build's threads only
/// touch atomics (and a lock at phase changes).
#[derive(Default)]
struct Tracker {
    phase: Mutex<Option<String>>,
    files: AtomicU64,
    bytes: AtomicU64,
    /// Plus one, so that 0 means unknown.
    total: AtomicU64,
}

impl Tracker {
    fn snapshot(&self) -> ImageProgress {
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let total = self.total.load(Ordering::Relaxed);
        ImageProgress {
            phase: self.phase.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            files: clamp(self.files.load(Ordering::Relaxed)),
            bytes: clamp(self.bytes.load(Ordering::Relaxed)),
            total: (total > 0).then(|| clamp(total - 1)),
        }
    }
}

impl Progress for Tracker {
    fn phase(&self, name: &str, total_bytes: Option<u64>) {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner()) = Some(name.to_string());
        self.files.store(0, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
        self.total.store(
            total_bytes.map_or(0, |t| t.saturating_add(1)),
            Ordering::Relaxed,
        );
    }

    fn advance(&self, files: u64, bytes: u64) {
        self.files.fetch_add(files, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// Writes the tracker's progress while it changes (at most every [`FLUSH`]) and a heartbeat
/// every [`HEARTBEAT`], until `finished`; then once more, so the last phase is recorded.
fn flush_progress(
    ctx: &Ctx,
    id: i64,
    tracker: &Tracker,
    finished: &(Mutex<bool>, Condvar),
    record: &(dyn Fn(&mut Conn, &ImageProgress) -> diesel::QueryResult<bool> + Sync),
) {
    let mut written: Option<ImageProgress> = None;
    let mut last_write = Instant::now();
    loop {
        let done = {
            let g = finished.0.lock().unwrap_or_else(|p| p.into_inner());
            let (g, _) = finished
                .1
                .wait_timeout_while(g, FLUSH, |f| !*f)
                .unwrap_or_else(|p| p.into_inner());
            *g
        };
        let snap = tracker.snapshot();
        if done || written.as_ref() != Some(&snap) || last_write.elapsed() >= HEARTBEAT {
            let r = ctx.db.get().and_then(|mut c| Ok(record(&mut c, &snap)?));
            match r {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(job = id, "job taken away while running");
                    return;
                }
                // Next time, then: a database hiccup is no reason to stop a build.
                Err(e) => tracing::warn!(job = id, "cannot record progress: {e:#}"),
            }
            written = Some(snap);
            last_write = Instant::now();
        }
        if done {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_values_round_trip() {
        let me = Identity::current();
        let w = me.worker(3);
        assert_eq!(Identity::of_worker(&w), Some(me.clone()));
        assert!(w.ends_with(&format!("/{}/3", me.pid)));
        assert_eq!(Identity::of_worker("garbage"), None);
        assert!(process_exists(me.pid));
    }

    #[test]
    fn image_names_are_safe_file_names() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            image_file(&dir.path().join("none.ufr"), Format::Qcow2, 7),
            "scan-7.qcow2"
        );
    }

    #[test]
    fn progress_snapshots() {
        let t = Tracker::default();
        assert_eq!(t.snapshot(), ImageProgress::default());
        t.phase("install", Some(100));
        t.advance(2, 40);
        assert_eq!(
            t.snapshot(),
            ImageProgress {
                phase: Some("install".into()),
                files: 2,
                bytes: 40,
                total: Some(100)
            }
        );
        t.phase("tune", None);
        assert_eq!(t.snapshot().total, None);
        assert_eq!(t.snapshot().bytes, 0);
    }
}
