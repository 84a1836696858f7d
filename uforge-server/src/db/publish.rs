//! Queries of publish targets and publication jobs. Like every query, each takes the owner's
//! id where rows belong to a user; the workers' queries go by job id and worker.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::models::{NewPublicationRow, NewTargetRow, PublicationRow, TargetRow};
use super::queries::{image_status as job, ImageProgress};
use super::schema::{images, publications, targets};
use super::{now, AnyConnection};

type C = AnyConnection;

/// Stores a target; `None` if the user has one of that name.
pub fn create_target(c: &mut C, row: &NewTargetRow<'_>) -> QueryResult<Option<TargetRow>> {
    match diesel::insert_into(targets::table)
        .values(row)
        .returning(targets::all_columns)
        .get_result(c)
    {
        Ok(t) => Ok(Some(t)),
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The user's targets, by name.
pub fn list_targets(c: &mut C, user: i64) -> QueryResult<Vec<TargetRow>> {
    targets::table
        .filter(targets::user_id.eq(user))
        .order(targets::name)
        .select(TargetRow::as_select())
        .load(c)
}

/// One of the user's targets, by id or by name.
pub fn target(c: &mut C, user: i64, key: &TargetKey) -> QueryResult<Option<TargetRow>> {
    let q = targets::table
        .filter(targets::user_id.eq(user))
        .into_boxed();
    let q = match key {
        TargetKey::Id(id) => q.filter(targets::id.eq(*id)),
        TargetKey::Name(n) => q.filter(targets::name.eq(n.clone())),
    };
    q.select(TargetRow::as_select()).first(c).optional()
}

/// How a request names a target: its id, or its name (names never start with a digit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetKey {
    /// The id.
    Id(i64),
    /// The name.
    Name(String),
}

/// A target, whoever owns it: for the worker that publishes to it.
pub fn target_by_id(c: &mut C, id: i64) -> QueryResult<Option<TargetRow>> {
    targets::table
        .filter(targets::id.eq(id))
        .select(TargetRow::as_select())
        .first(c)
        .optional()
}

/// Replaces the sealed credentials of one of the user's targets; whether it exists.
pub fn set_target_credentials(
    c: &mut C,
    user: i64,
    id: i64,
    sealed: Option<&[u8]>,
) -> QueryResult<bool> {
    diesel::update(targets::table.filter(targets::user_id.eq(user).and(targets::id.eq(id))))
        .set(targets::credentials.eq(sealed))
        .execute(c)
        .map(|n| n > 0)
}

/// What [`delete_target`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetDeletion {
    /// The row is gone.
    Deleted,
    /// Publications to it are recorded (these ids); it stays.
    InUse(Vec<i64>),
    /// No such target of the user.
    Missing,
}

/// Deletes one of the user's targets unless publications to it are recorded: deleting a
/// publication is what takes back what it pushed, and that needs the target.
pub fn delete_target(c: &mut C, user: i64, id: i64) -> QueryResult<TargetDeletion> {
    c.transaction(|c| {
        let users: Vec<i64> = publications::table
            .filter(publications::target_id.eq(id))
            .order(publications::id)
            .select(publications::id)
            .load(c)?;
        let exists = targets::table
            .filter(targets::user_id.eq(user).and(targets::id.eq(id)))
            .select(targets::id)
            .first::<i64>(c)
            .optional()?;
        if exists.is_none() {
            return Ok(TargetDeletion::Missing);
        }
        if !users.is_empty() {
            return Ok(TargetDeletion::InUse(users));
        }
        diesel::delete(targets::table.filter(targets::id.eq(id))).execute(c)?;
        Ok(TargetDeletion::Deleted)
    })
}

/// Queues a publication.
pub fn create_publication(c: &mut C, row: &NewPublicationRow<'_>) -> QueryResult<PublicationRow> {
    let id: i64 = diesel::insert_into(publications::table)
        .values(row)
        .returning(publications::id)
        .get_result(c)?;
    by_id(c, id)
}

fn by_id(c: &mut C, id: i64) -> QueryResult<PublicationRow> {
    publications::table
        .filter(publications::id.eq(id))
        .select(PublicationRow::as_select())
        .first(c)
}

/// One of the user's publications, with its target's name.
pub fn publication(c: &mut C, user: i64, id: i64) -> QueryResult<Option<(PublicationRow, String)>> {
    publications::table
        .inner_join(targets::table)
        .filter(publications::user_id.eq(user).and(publications::id.eq(id)))
        .select((PublicationRow::as_select(), targets::name))
        .first(c)
        .optional()
}

/// The user's publications, newest first, optionally of one image.
pub fn list_publications(
    c: &mut C,
    user: i64,
    image: Option<i64>,
) -> QueryResult<Vec<(PublicationRow, String)>> {
    let mut q = publications::table
        .inner_join(targets::table)
        .filter(publications::user_id.eq(user))
        .into_boxed();
    if let Some(i) = image {
        q = q.filter(publications::image_id.eq(i));
    }
    q.order(publications::id.desc())
        .select((PublicationRow::as_select(), targets::name))
        .load(c)
}

/// The publications of an image that are queued or running.
pub fn active_publications_of_image(c: &mut C, image: i64) -> QueryResult<Vec<i64>> {
    publications::table
        .filter(publications::image_id.eq(image))
        .filter(publications::status.eq_any([job::QUEUED, job::RUNNING]))
        .order(publications::id)
        .select(publications::id)
        .load(c)
}

/// Forgets the image of its publications once it is deleted (their records stay).
pub fn detach_image(c: &mut C, image: i64) -> QueryResult<()> {
    diesel::update(publications::table.filter(publications::image_id.eq(image)))
        .set(publications::image_id.eq(None::<i64>))
        .execute(c)
        .map(drop)
}

/// What [`retry_publication`] did.
#[derive(Debug, Clone)]
pub enum Retry {
    /// Queued again.
    Queued(Box<PublicationRow>),
    /// Not failed: it is in this state.
    NotFailed(String),
    /// No such publication of the user.
    Missing,
}

/// Queues one of the user's failed publications again. What the failed attempt sent is kept
/// at the target and in its resume points: the next attempt resumes.
pub fn retry_publication(c: &mut C, user: i64, id: i64) -> QueryResult<Retry> {
    let mine =
        || publications::table.filter(publications::user_id.eq(user).and(publications::id.eq(id)));
    let n = diesel::update(mine().filter(publications::status.eq(job::FAILED)))
        .set((
            publications::status.eq(job::QUEUED),
            publications::error.eq(None::<String>),
            publications::error_kind.eq(None::<String>),
            publications::phase.eq(None::<String>),
            publications::progress_bytes.eq(0i64),
            publications::progress_total.eq(None::<i64>),
            publications::worker.eq(None::<String>),
            publications::started_at.eq(None::<NaiveDateTime>),
            publications::finished_at.eq(None::<NaiveDateTime>),
        ))
        .execute(c)?;
    if n > 0 {
        return by_id(c, id).map(|r| Retry::Queued(Box::new(r)));
    }
    Ok(
        match mine()
            .select(publications::status)
            .first::<String>(c)
            .optional()?
        {
            Some(s) => Retry::NotFailed(s),
            None => Retry::Missing,
        },
    )
}

/// What [`delete_publication`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// The row is gone.
    Deleted,
    /// The job is running and was left alone.
    Running,
    /// No such publication of the user.
    Missing,
}

/// Deletes one of the user's publication records unless it is running (the condition is
/// part of the DELETE, as for images).
pub fn delete_publication(c: &mut C, user: i64, id: i64) -> QueryResult<Deletion> {
    let n = diesel::delete(
        publications::table.filter(
            publications::user_id
                .eq(user)
                .and(publications::id.eq(id))
                .and(publications::status.ne(job::RUNNING)),
        ),
    )
    .execute(c)?;
    if n > 0 {
        return Ok(Deletion::Deleted);
    }
    let exists = publications::table
        .filter(publications::user_id.eq(user).and(publications::id.eq(id)))
        .select(publications::id)
        .first::<i64>(c)
        .optional()?;
    Ok(if exists.is_some() {
        Deletion::Running
    } else {
        Deletion::Missing
    })
}

/// Claims the oldest queued publication for `worker`; the same scheme as
/// [`super::queries::claim_image`].
pub fn claim_publication(c: &mut C, worker: &str) -> QueryResult<Option<PublicationRow>> {
    if let AnyConnection::Postgresql(pg) = c {
        use diesel::sql_types::{Text, Timestamp};
        return diesel::sql_query(
            "UPDATE publications SET status = 'running', worker = $1, heartbeat_at = $2, \
             started_at = $2 \
             WHERE status = 'queued' AND id = (SELECT id FROM publications \
             WHERE status = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING *",
        )
        .bind::<Text, _>(worker)
        .bind::<Timestamp, _>(now())
        .get_result::<PublicationRow>(pg)
        .optional();
    }
    loop {
        let next = publications::table
            .filter(publications::status.eq(job::QUEUED))
            .order(publications::id)
            .select(publications::id)
            .first::<i64>(c)
            .optional()?;
        let Some(id) = next else {
            return Ok(None);
        };
        let at = now();
        let won = diesel::update(
            publications::table.filter(
                publications::id
                    .eq(id)
                    .and(publications::status.eq(job::QUEUED)),
            ),
        )
        .set((
            publications::status.eq(job::RUNNING),
            publications::worker.eq(Some(worker)),
            publications::heartbeat_at.eq(Some(at)),
            publications::started_at.eq(Some(at)),
        ))
        .returning(publications::id)
        .get_result::<i64>(c)
        .optional()?;
        if let Some(id) = won {
            return by_id(c, id).map(Some);
        }
    }
}

/// Matches a job only while `worker` still holds it.
macro_rules! held_by {
    ($id:expr, $worker:expr) => {
        publications::table.filter(
            publications::id
                .eq($id)
                .and(publications::status.eq(job::RUNNING))
                .and(publications::worker.eq($worker)),
        )
    };
}

/// Records a running publication's progress and heartbeat; whether the worker still holds it.
pub fn record_progress(c: &mut C, id: i64, worker: &str, p: &ImageProgress) -> QueryResult<bool> {
    diesel::update(held_by!(id, worker))
        .set((
            publications::phase.eq(p.phase.as_deref()),
            publications::progress_bytes.eq(p.bytes),
            publications::progress_total.eq(p.total),
            publications::heartbeat_at.eq(Some(now())),
        ))
        .execute(c)
        .map(|n| n > 0)
}

/// Marks a running publication done with its record; whether the worker still held it.
pub fn finish_publication(c: &mut C, id: i64, worker: &str, result: &str) -> QueryResult<bool> {
    diesel::update(held_by!(id, worker))
        .set((
            publications::status.eq(job::DONE),
            publications::result.eq(Some(result)),
            publications::error.eq(None::<String>),
            publications::error_kind.eq(None::<String>),
            publications::finished_at.eq(Some(now())),
        ))
        .execute(c)
        .map(|n| n > 0)
}

/// Marks a running publication failed, if `worker` still holds it; whether it did.
pub fn fail_publication(
    c: &mut C,
    id: i64,
    worker: &str,
    error: &str,
    kind: Option<&str>,
) -> QueryResult<bool> {
    diesel::update(held_by!(id, worker))
        .set((
            publications::status.eq(job::FAILED),
            publications::error.eq(Some(error)),
            publications::error_kind.eq(kind),
            publications::finished_at.eq(Some(now())),
        ))
        .execute(c)
        .map(|n| n > 0)
}

/// Every running publication, of every user and worker.
pub fn running_publications(c: &mut C) -> QueryResult<Vec<PublicationRow>> {
    publications::table
        .filter(publications::status.eq(job::RUNNING))
        .order(publications::id)
        .select(PublicationRow::as_select())
        .load(c)
}

/// The status of each of the given publications that exists.
pub fn publication_statuses(c: &mut C, ids: &[i64]) -> QueryResult<Vec<(i64, String)>> {
    publications::table
        .filter(publications::id.eq_any(ids))
        .select((publications::id, publications::status))
        .load(c)
}

/// An image's format, file name, SHA-256 and status.
pub type ImageFile = (String, Option<String>, Option<String>, String);

/// The file, format and digest of one of the user's images: what a publication sends.
pub fn image_file(c: &mut C, user: i64, image: i64) -> QueryResult<Option<ImageFile>> {
    images::table
        .filter(images::user_id.eq(user).and(images::id.eq(image)))
        .select((images::format, images::file, images::sha256, images::status))
        .first(c)
        .optional()
}
