//! Every query the server makes. Each takes the owner's id where rows belong to a user, so that
//! a request can only ever reach its own rows.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::models::*;
use super::schema::{images, machines, recreated_packages, repos, scan_blobs, scans, users};
use super::{now, AnyConnection};

type C = AnyConnection;

/// Scan states, as stored: the API's names.
pub mod status {
    use uforge_api::ScanStatus;

    /// Waiting for its report.
    pub const CREATED: &str = ScanStatus::Created.as_str();
    /// Report analysed, waiting for the overlay.
    pub const ANALYZED: &str = ScanStatus::Analyzed.as_str();
    /// Overlay verified and stored.
    pub const COMPLETE: &str = ScanStatus::Complete.as_str();
}

/// Image job states, as stored: the API's names.
pub mod image_status {
    use uforge_api::ImageStatus;

    /// Waiting for a worker.
    pub const QUEUED: &str = ImageStatus::Queued.as_str();
    /// Claimed by a worker and building.
    pub const RUNNING: &str = ImageStatus::Running.as_str();
    /// Built: the file, its size, digest and tuning log are stored.
    pub const DONE: &str = ImageStatus::Done.as_str();
    /// Ended without an image; `error` says why.
    pub const FAILED: &str = ImageStatus::Failed.as_str();
}

/// Creates a user; `Ok(None)` if the name is taken.
pub fn create_user(
    c: &mut C,
    name: &str,
    token_sha256: &[u8],
    admin: bool,
) -> QueryResult<Option<User>> {
    let row = NewUser {
        name,
        token_sha256,
        admin,
        created_at: now(),
    };
    match diesel::insert_into(users::table)
        .values(&row)
        .returning(users::all_columns)
        .get_result(c)
    {
        Ok(u) => Ok(Some(u)),
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The user with this name.
pub fn user_by_name(c: &mut C, name: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(users::name.eq(name))
        .select(User::as_select())
        .first(c)
        .optional()
}

/// The user whose token hashes to this.
pub fn user_by_token(c: &mut C, token_sha256: &[u8]) -> QueryResult<Option<User>> {
    users::table
        .filter(users::token_sha256.eq(token_sha256))
        .select(User::as_select())
        .first(c)
        .optional()
}

/// Every user, by name.
pub fn list_users(c: &mut C) -> QueryResult<Vec<User>> {
    users::table
        .order(users::name)
        .select(User::as_select())
        .load(c)
}

/// Registers a repository line.
pub fn add_repo(c: &mut C, user: i64, line: &str) -> QueryResult<Repo> {
    diesel::insert_into(repos::table)
        .values(&NewRepo {
            user_id: user,
            line,
            created_at: now(),
        })
        .returning(repos::all_columns)
        .get_result(c)
}

/// The user's repositories, oldest first.
pub fn list_repos(c: &mut C, user: i64) -> QueryResult<Vec<Repo>> {
    repos::table
        .filter(repos::user_id.eq(user))
        .order(repos::id)
        .select(Repo::as_select())
        .load(c)
}

/// One of the user's repositories.
pub fn repo(c: &mut C, user: i64, id: i64) -> QueryResult<Option<Repo>> {
    repos::table
        .filter(repos::user_id.eq(user).and(repos::id.eq(id)))
        .select(Repo::as_select())
        .first(c)
        .optional()
}

/// Records a successful sync.
pub fn set_repo_synced(c: &mut C, id: i64, packages: i64, at: NaiveDateTime) -> QueryResult<Repo> {
    diesel::update(repos::table.filter(repos::id.eq(id)))
        .set((
            repos::packages.eq(Some(packages)),
            repos::synced_at.eq(Some(at)),
        ))
        .returning(repos::all_columns)
        .get_result(c)
}

/// Forgets one of the user's repositories; whether it existed.
pub fn delete_repo(c: &mut C, user: i64, id: i64) -> QueryResult<bool> {
    diesel::delete(repos::table.filter(repos::user_id.eq(user).and(repos::id.eq(id))))
        .execute(c)
        .map(|n| n > 0)
}

/// The lines of the user's repositories that have been synced: the ones analyses use.
pub fn synced_repo_lines(c: &mut C, user: i64) -> QueryResult<Vec<String>> {
    repos::table
        .filter(repos::user_id.eq(user).and(repos::synced_at.is_not_null()))
        .order(repos::id)
        .select(repos::line)
        .load(c)
}

/// The user's machine of this name, created if new.
pub fn ensure_machine(c: &mut C, user: i64, name: &str) -> QueryResult<Machine> {
    let find = |c: &mut C| {
        machines::table
            .filter(machines::user_id.eq(user).and(machines::name.eq(name)))
            .select(Machine::as_select())
            .first(c)
            .optional()
    };
    if let Some(m) = find(c)? {
        return Ok(m);
    }
    let inserted = diesel::insert_into(machines::table)
        .values(&NewMachine {
            user_id: user,
            name,
            created_at: now(),
        })
        .returning(machines::all_columns)
        .get_result(c);
    match inserted {
        Ok(m) => Ok(m),
        // Another request created it in between.
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            find(c)?.ok_or(DieselError::NotFound)
        }
        Err(e) => Err(e),
    }
}

/// The user's machines with their number of scans and the time of the newest, by name.
pub fn machines_with_stats(
    c: &mut C,
    user: i64,
) -> QueryResult<Vec<(Machine, i64, Option<NaiveDateTime>)>> {
    let ms: Vec<Machine> = machines::table
        .filter(machines::user_id.eq(user))
        .order(machines::name)
        .select(Machine::as_select())
        .load(c)?;
    let times: Vec<(i64, NaiveDateTime)> = scans::table
        .filter(scans::user_id.eq(user))
        .select((scans::machine_id, scans::created_at))
        .load(c)?;
    Ok(ms
        .into_iter()
        .map(|m| {
            let mine = times.iter().filter(|(id, _)| *id == m.id);
            let count = mine.clone().count() as i64;
            let last = mine.map(|(_, t)| *t).max();
            (m, count, last)
        })
        .collect())
}

/// The newest unfinished scan of a machine.
pub fn unfinished_scan(c: &mut C, machine: i64) -> QueryResult<Option<Scan>> {
    scans::table
        .filter(scans::machine_id.eq(machine))
        .filter(scans::status.ne(status::COMPLETE))
        .order(scans::id.desc())
        .select(Scan::as_select())
        .first(c)
        .optional()
}

/// Starts a scan of a machine, or returns the unfinished one a concurrent call started: the
/// unique index `scans_one_unfinished` lets only one insert through.
pub fn create_scan(c: &mut C, user: i64, machine: i64) -> QueryResult<Scan> {
    let inserted = diesel::insert_into(scans::table)
        .values(&NewScan {
            user_id: user,
            machine_id: machine,
            status: status::CREATED,
            created_at: now(),
        })
        .returning(scans::all_columns)
        .get_result(c);
    match inserted {
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            unfinished_scan(c, machine)?.ok_or(DieselError::NotFound)
        }
        other => other,
    }
}

/// Puts a scan back to `created`, forgetting its analysis.
pub fn reset_scan(c: &mut C, id: i64) -> QueryResult<Scan> {
    diesel::update(scans::table.filter(scans::id.eq(id)))
        .set((
            scans::status.eq(status::CREATED),
            scans::summary.eq(None::<String>),
            scans::completed_at.eq(None::<NaiveDateTime>),
        ))
        .returning(scans::all_columns)
        .get_result(c)
}

/// One of the user's scans, with its machine's name.
pub fn scan(c: &mut C, user: i64, id: i64) -> QueryResult<Option<(Scan, String)>> {
    scans::table
        .inner_join(machines::table)
        .filter(scans::user_id.eq(user).and(scans::id.eq(id)))
        .select((Scan::as_select(), machines::name))
        .first(c)
        .optional()
}

/// The user's scans, newest first, optionally of one machine.
pub fn list_scans(c: &mut C, user: i64, machine: Option<&str>) -> QueryResult<Vec<(Scan, String)>> {
    let mut q = scans::table
        .inner_join(machines::table)
        .filter(scans::user_id.eq(user))
        .into_boxed();
    if let Some(m) = machine {
        q = q.filter(machines::name.eq(m.to_string()));
    }
    q.order((scans::created_at.desc(), scans::id.desc()))
        .select((Scan::as_select(), machines::name))
        .load(c)
}

/// The complete scans of a machine other than `except`, oldest first.
pub fn complete_scans(c: &mut C, machine: i64, except: i64) -> QueryResult<Vec<i64>> {
    scans::table
        .filter(scans::machine_id.eq(machine))
        .filter(scans::status.eq(status::COMPLETE))
        .filter(scans::id.ne(except))
        .order(scans::id)
        .select(scans::id)
        .load(c)
}

/// Marks a scan analysed, with the totals of its analysis.
pub fn set_analyzed(c: &mut C, id: i64, summary: &str) -> QueryResult<()> {
    diesel::update(scans::table.filter(scans::id.eq(id)))
        .set((
            scans::status.eq(status::ANALYZED),
            scans::summary.eq(Some(summary)),
            scans::completed_at.eq(None::<NaiveDateTime>),
        ))
        .execute(c)
        .map(drop)
}

/// Marks a scan complete, replacing its totals when the overlay amended its report.
pub fn set_complete(c: &mut C, id: i64, summary: Option<&str>) -> QueryResult<Scan> {
    let done = (
        scans::status.eq(status::COMPLETE),
        scans::completed_at.eq(Some(now())),
    );
    let row = scans::table.filter(scans::id.eq(id));
    match summary {
        Some(s) => diesel::update(row).set((done, scans::summary.eq(Some(s)))),
        None => {
            return diesel::update(row)
                .set(done)
                .returning(scans::all_columns)
                .get_result(c)
        }
    }
    .returning(scans::all_columns)
    .get_result(c)
}

/// Deletes one of the user's scans; whether it existed. Packages rebuilt from it stay in the
/// user's repository and images built from it stay too, no longer tied to a scan.
pub fn delete_scan(c: &mut C, user: i64, id: i64) -> QueryResult<bool> {
    // Done here, not left to ON DELETE SET NULL, which SQLite applies only with foreign keys
    // switched on for the connection.
    diesel::update(recreated_packages::table.filter(recreated_packages::scan_id.eq(id)))
        .set(recreated_packages::scan_id.eq(None::<i64>))
        .execute(c)?;
    diesel::update(images::table.filter(images::scan_id.eq(id)))
        .set(images::scan_id.eq(None::<i64>))
        .execute(c)?;
    if scans::table
        .filter(scans::user_id.eq(user).and(scans::id.eq(id)))
        .select(scans::id)
        .first::<i64>(c)
        .optional()?
        .is_none()
    {
        return Ok(false);
    }
    diesel::delete(scan_blobs::table.filter(scan_blobs::scan_id.eq(id))).execute(c)?;
    diesel::delete(scans::table.filter(scans::user_id.eq(user).and(scans::id.eq(id))))
        .execute(c)
        .map(|n| n > 0)
}

/// How many digests one statement names: well within both databases' parameter limits.
const DIGEST_BATCH: usize = 500;

/// Records that a scan holds these contents (lower-case hex SHA-256) in the blob store.
pub fn record_scan_blobs(c: &mut C, scan: i64, digests: &[String]) -> QueryResult<()> {
    // One statement per batch, spelled the same for both databases (diesel's batch insert is
    // not available across them). Digests are the server's own hex, checked again here, so
    // they go into the text as literals.
    if let Some(d) = digests
        .iter()
        .find(|d| d.len() != 64 || !d.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
    {
        return Err(DieselError::QueryBuilderError(
            format!("{d:?} is not a SHA-256 in hex").into(),
        ));
    }
    c.transaction(|c| {
        for chunk in digests.chunks(DIGEST_BATCH) {
            let values: Vec<String> = chunk.iter().map(|d| format!("({scan}, '{d}')")).collect();
            diesel::sql_query(format!(
                "INSERT INTO scan_blobs (scan_id, sha256) VALUES {} ON CONFLICT DO NOTHING",
                values.join(", ")
            ))
            .execute(c)?;
        }
        Ok(())
    })
}

/// Which of these contents (lower-case hex SHA-256) a scan of the user holds.
pub fn user_holds(c: &mut C, user: i64, digests: &[String]) -> QueryResult<Vec<String>> {
    let mut out = Vec::new();
    for chunk in digests.chunks(DIGEST_BATCH) {
        let mut held: Vec<String> = scan_blobs::table
            .inner_join(scans::table)
            .filter(scans::user_id.eq(user))
            .filter(scan_blobs::sha256.eq_any(chunk))
            .select(scan_blobs::sha256)
            .distinct()
            .load(c)?;
        out.append(&mut held);
    }
    Ok(out)
}

/// Records rebuilt packages, replacing earlier records of the same files.
pub fn record_packages(c: &mut C, rows: &[NewPackage<'_>]) -> QueryResult<()> {
    for r in rows {
        diesel::delete(
            recreated_packages::table.filter(
                recreated_packages::user_id
                    .eq(r.user_id)
                    .and(recreated_packages::file.eq(r.file)),
            ),
        )
        .execute(c)?;
        diesel::insert_into(recreated_packages::table)
            .values(r)
            .execute(c)?;
    }
    Ok(())
}

/// The user's recreated packages, by name and version.
pub fn list_packages(c: &mut C, user: i64) -> QueryResult<Vec<Package>> {
    recreated_packages::table
        .filter(recreated_packages::user_id.eq(user))
        .order((
            recreated_packages::name,
            recreated_packages::version,
            recreated_packages::id,
        ))
        .select(Package::as_select())
        .load(c)
}

/// One of the user's recreated packages, by file name.
pub fn package_file(c: &mut C, user: i64, file: &str) -> QueryResult<Option<Package>> {
    recreated_packages::table
        .filter(
            recreated_packages::user_id
                .eq(user)
                .and(recreated_packages::file.eq(file)),
        )
        .select(Package::as_select())
        .first(c)
        .optional()
}

/// Queues an image job.
pub fn create_image(c: &mut C, row: &NewImage<'_>) -> QueryResult<Image> {
    let id: i64 = diesel::insert_into(images::table)
        .values(row)
        .returning(images::id)
        .get_result(c)?;
    image_by_id(c, id)
}

/// An image job, whoever owns it.
fn image_by_id(c: &mut C, id: i64) -> QueryResult<Image> {
    images::table
        .filter(images::id.eq(id))
        .select(Image::as_select())
        .first(c)
}

/// One of the user's image jobs, with the name of the machine its scan is of (none once the
/// scan is deleted).
pub fn image(c: &mut C, user: i64, id: i64) -> QueryResult<Option<(Image, Option<String>)>> {
    images::table
        .left_join(scans::table.inner_join(machines::table))
        .filter(images::user_id.eq(user).and(images::id.eq(id)))
        .select((Image::as_select(), machines::name.nullable()))
        .first(c)
        .optional()
}

/// The tuning log of one of the user's image jobs: `None` if there is no such job, `Some(None)`
/// if it has none (yet).
pub fn image_tuning_log(c: &mut C, user: i64, id: i64) -> QueryResult<Option<Option<String>>> {
    images::table
        .filter(images::user_id.eq(user).and(images::id.eq(id)))
        .select(images::tuning_log)
        .first(c)
        .optional()
}

/// The user's image jobs, newest first, optionally of one scan.
pub fn list_images(
    c: &mut C,
    user: i64,
    scan: Option<i64>,
) -> QueryResult<Vec<(Image, Option<String>)>> {
    let mut q = images::table
        .left_join(scans::table.inner_join(machines::table))
        .filter(images::user_id.eq(user))
        .into_boxed();
    if let Some(s) = scan {
        q = q.filter(images::scan_id.eq(s));
    }
    q.order(images::id.desc())
        .select((Image::as_select(), machines::name.nullable()))
        .load(c)
}

/// What [`delete_image`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageDeletion {
    /// The row is gone.
    Deleted,
    /// The job is running and was left alone.
    Running,
    /// No such job of the user.
    Missing,
}

/// Deletes one of the user's image jobs unless it is running. The condition is part of the
/// DELETE, so a worker claiming the job at the same moment either wins (and the job stays) or
/// finds it gone.
pub fn delete_image(c: &mut C, user: i64, id: i64) -> QueryResult<ImageDeletion> {
    let n = diesel::delete(
        images::table.filter(
            images::user_id
                .eq(user)
                .and(images::id.eq(id))
                .and(images::status.ne(image_status::RUNNING)),
        ),
    )
    .execute(c)?;
    if n > 0 {
        return Ok(ImageDeletion::Deleted);
    }
    let exists = images::table
        .filter(images::user_id.eq(user).and(images::id.eq(id)))
        .select(images::id)
        .first::<i64>(c)
        .optional()?;
    Ok(match exists {
        Some(_) => ImageDeletion::Running,
        None => ImageDeletion::Missing,
    })
}

/// The image jobs of a scan that are queued or running.
pub fn active_images_of_scan(c: &mut C, scan: i64) -> QueryResult<Vec<i64>> {
    images::table
        .filter(images::scan_id.eq(scan))
        .filter(images::status.eq_any([image_status::QUEUED, image_status::RUNNING]))
        .order(images::id)
        .select(images::id)
        .load(c)
}

/// Claims the oldest queued image job for `worker`, or `None` when nothing is queued.
///
/// The UPDATE only matches a row that is still queued, so when several workers (of this or
/// other processes) go for the same job exactly one of them gets it. On PostgreSQL the pick
/// and the claim are one statement that skips rows other workers are claiming; on SQLite,
/// whose writers take turns anyway, a worker that lost the race looks again.
pub fn claim_image(c: &mut C, worker: &str) -> QueryResult<Option<Image>> {
    if let AnyConnection::Postgresql(pg) = c {
        use diesel::sql_types::{Text, Timestamp};
        return diesel::sql_query(
            "UPDATE images SET status = 'running', worker = $1, heartbeat_at = $2, \
             started_at = $2 \
             WHERE status = 'queued' AND id = (SELECT id FROM images WHERE status = 'queued' \
             ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING *",
        )
        .bind::<Text, _>(worker)
        .bind::<Timestamp, _>(now())
        .get_result::<Image>(pg)
        .optional();
    }
    loop {
        let next = images::table
            .filter(images::status.eq(image_status::QUEUED))
            .order(images::id)
            .select(images::id)
            .first::<i64>(c)
            .optional()?;
        let Some(id) = next else {
            return Ok(None);
        };
        let at = now();
        let won = diesel::update(
            images::table.filter(
                images::id
                    .eq(id)
                    .and(images::status.eq(image_status::QUEUED)),
            ),
        )
        .set((
            images::status.eq(image_status::RUNNING),
            images::worker.eq(Some(worker)),
            images::heartbeat_at.eq(Some(at)),
            images::started_at.eq(Some(at)),
        ))
        .returning(images::id)
        .get_result::<i64>(c)
        .optional()?;
        if let Some(id) = won {
            // Held now: nobody else changes the row until this worker lets go of it.
            return image_by_id(c, id).map(Some);
        }
    }
}

/// The progress of a running job, as recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageProgress {
    /// Phase name.
    pub phase: Option<String>,
    /// Entries processed in the phase.
    pub files: i64,
    /// Bytes processed in the phase.
    pub bytes: i64,
    /// Bytes the phase will process, if known.
    pub total: Option<i64>,
}

/// Matches a job only while `worker` still holds it: once a job has been taken away (marked
/// failed because its worker looked dead), nothing the old worker writes lands.
macro_rules! held_by {
    ($id:expr, $worker:expr) => {
        images::table.filter(
            images::id
                .eq($id)
                .and(images::status.eq(image_status::RUNNING))
                .and(images::worker.eq($worker)),
        )
    };
}

/// Records a running job's progress and heartbeat; whether the worker still holds the job.
pub fn record_image_progress(
    c: &mut C,
    id: i64,
    worker: &str,
    p: &ImageProgress,
) -> QueryResult<bool> {
    diesel::update(held_by!(id, worker))
        .set((
            images::phase.eq(p.phase.as_deref()),
            images::progress_files.eq(p.files),
            images::progress_bytes.eq(p.bytes),
            images::progress_total.eq(p.total),
            images::heartbeat_at.eq(Some(now())),
        ))
        .execute(c)
        .map(|n| n > 0)
}

/// Records the file name a running job writes; whether the worker still holds the job.
pub fn set_image_file(c: &mut C, id: i64, worker: &str, file: &str) -> QueryResult<bool> {
    diesel::update(held_by!(id, worker))
        .set(images::file.eq(Some(file)))
        .execute(c)
        .map(|n| n > 0)
}

/// Marks a running job done with what it produced; whether the worker still held the job.
pub fn finish_image(
    c: &mut C,
    id: i64,
    worker: &str,
    size: i64,
    sha256: &str,
    tuning_log: &str,
) -> QueryResult<bool> {
    diesel::update(held_by!(id, worker))
        .set((
            images::status.eq(image_status::DONE),
            images::size.eq(Some(size)),
            images::sha256.eq(Some(sha256)),
            images::tuning_log.eq(Some(tuning_log)),
            images::error.eq(None::<String>),
            images::finished_at.eq(Some(now())),
        ))
        .execute(c)
        .map(|n| n > 0)
}

/// Marks a running job failed, if `worker` still holds it; whether it did.
pub fn fail_image(c: &mut C, id: i64, worker: &str, error: &str) -> QueryResult<bool> {
    diesel::update(held_by!(id, worker))
        .set((
            images::status.eq(image_status::FAILED),
            images::error.eq(Some(error)),
            images::size.eq(None::<i64>),
            images::sha256.eq(None::<String>),
            images::finished_at.eq(Some(now())),
        ))
        .execute(c)
        .map(|n| n > 0)
}

/// Every running image job, of every user and every worker.
pub fn running_images(c: &mut C) -> QueryResult<Vec<Image>> {
    images::table
        .filter(images::status.eq(image_status::RUNNING))
        .order(images::id)
        .select(Image::as_select())
        .load(c)
}

/// The status of each of these image jobs that exists.
pub fn image_statuses(c: &mut C, ids: &[i64]) -> QueryResult<Vec<(i64, String)>> {
    images::table
        .filter(images::id.eq_any(ids))
        .select((images::id, images::status))
        .load(c)
}

/// A user's name and whether they are an administrator.
pub fn user_name_admin(c: &mut C, id: i64) -> QueryResult<Option<(String, bool)>> {
    users::table
        .filter(users::id.eq(id))
        .select((users::name, users::admin))
        .first(c)
        .optional()
}
