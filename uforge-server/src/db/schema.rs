//! Tables, as diesel sees them. Written by hand to match both migration directories.

diesel::table! {
    /// API users; only the SHA-256 of each token is kept.
    users (id) {
        /// Primary key.
        id -> BigInt,
        /// Unique login name.
        name -> Text,
        /// SHA-256 of the 32-byte token.
        token_sha256 -> Binary,
        /// Administrator.
        admin -> Bool,
        /// Creation time (UTC).
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// Package repositories registered by a user, as sources.list lines.
    repos (id) {
        /// Primary key.
        id -> BigInt,
        /// Owner.
        user_id -> BigInt,
        /// The sources.list line.
        line -> Text,
        /// Packages in the index at the last sync.
        packages -> Nullable<BigInt>,
        /// Last successful sync (UTC); unsynced repositories are not used by analyses.
        synced_at -> Nullable<Timestamp>,
        /// Creation time (UTC).
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// Machines, named per user.
    machines (id) {
        /// Primary key.
        id -> BigInt,
        /// Owner.
        user_id -> BigInt,
        /// Name, unique per user.
        name -> Text,
        /// Creation time (UTC).
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// Scans of a machine: `created`, then `analyzed` once the report is in, then `complete`
    /// once the overlay is verified.
    scans (id) {
        /// Primary key.
        id -> BigInt,
        /// Owner.
        user_id -> BigInt,
        /// The machine scanned.
        machine_id -> BigInt,
        /// `created`, `analyzed` or `complete`.
        status -> Text,
        /// Creation time (UTC).
        created_at -> Timestamp,
        /// When the overlay was verified (UTC).
        completed_at -> Nullable<Timestamp>,
        /// Totals of the analysis, as JSON.
        summary -> Nullable<Text>,
    }
}

diesel::table! {
    /// Packages rebuilt from overlays, in the user's flat repository.
    recreated_packages (id) {
        /// Primary key.
        id -> BigInt,
        /// Owner.
        user_id -> BigInt,
        /// The scan it was rebuilt from (null once that scan is deleted).
        scan_id -> Nullable<BigInt>,
        /// Package name.
        name -> Text,
        /// Version.
        version -> Text,
        /// Architecture.
        arch -> Text,
        /// File name in the user's repository.
        file -> Text,
        /// SHA-256 of the .deb, hex.
        sha256 -> Text,
        /// Size of the .deb.
        size -> BigInt,
        /// Creation time (UTC).
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// Image generation jobs: `queued`, claimed by a worker and `running`, then `done` or
    /// `failed`.
    images (id) {
        /// Primary key.
        id -> BigInt,
        /// Owner.
        user_id -> BigInt,
        /// The scan the image is built from (null once that scan is deleted).
        scan_id -> Nullable<BigInt>,
        /// Output format name (`qcow2`).
        format -> Text,
        /// Target platform name (`kvm`).
        target -> Text,
        /// Network policy (`keep` or `dhcp`).
        network -> Text,
        /// `queued`, `running`, `done` or `failed`.
        status -> Text,
        /// The build phase running, or the last one reached.
        phase -> Nullable<Text>,
        /// Entries processed in the phase.
        progress_files -> BigInt,
        /// Bytes processed in the phase.
        progress_bytes -> BigInt,
        /// Bytes the phase will process, when known.
        progress_total -> Nullable<BigInt>,
        /// Why the job failed: the whole error chain.
        error -> Nullable<Text>,
        /// File name of the image under its directory.
        file -> Nullable<Text>,
        /// Size of the finished image.
        size -> Nullable<BigInt>,
        /// SHA-256 of the finished image, hex.
        sha256 -> Nullable<Text>,
        /// The tuning log of the finished image, JSON.
        tuning_log -> Nullable<Text>,
        /// The process running the job (`HOST/BOOT/PID`).
        worker -> Nullable<Text>,
        /// When that process last showed signs of life (UTC).
        heartbeat_at -> Nullable<Timestamp>,
        /// Creation time (UTC).
        created_at -> Timestamp,
        /// When a worker claimed it (UTC).
        started_at -> Nullable<Timestamp>,
        /// When it ended (UTC).
        finished_at -> Nullable<Timestamp>,
        /// Whether tuning may upgrade, downgrade or remove packages of the source.
        allow_upgrades -> Bool,
    }
}

diesel::table! {
    /// Publish targets of a user: where images go. Credentials are sealed with the server key.
    targets (id) {
        /// Primary key.
        id -> BigInt,
        /// Owner.
        user_id -> BigInt,
        /// Name, unique per user.
        name -> Text,
        /// Kind (`registry`, `s3`, `directory`, `libvirt`).
        kind -> Text,
        /// The endpoint URL as given.
        url -> Text,
        /// The options as given, JSON object.
        options -> Text,
        /// The library's target description, JSON (no credentials).
        spec -> Text,
        /// The credentials' JSON, sealed (nonce and ciphertext); null when there are none.
        credentials -> Nullable<Binary>,
        /// Creation time (UTC).
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// Publication jobs: `queued`, claimed by a worker and `running`, then `done` or `failed`.
    publications (id) {
        /// Primary key.
        id -> BigInt,
        /// Owner.
        user_id -> BigInt,
        /// The image published (null once that image is deleted).
        image_id -> Nullable<BigInt>,
        /// The target.
        target_id -> BigInt,
        /// The name at the target asked for (`REPO:TAG`, object or volume name).
        name -> Nullable<Text>,
        /// The machine to start, JSON (a deployment).
        instance -> Nullable<Text>,
        /// `queued`, `running`, `done` or `failed`.
        status -> Text,
        /// The phase running, or the last one reached.
        phase -> Nullable<Text>,
        /// Bytes sent in the phase.
        progress_bytes -> BigInt,
        /// Bytes the phase will send, when known.
        progress_total -> Nullable<BigInt>,
        /// Why the job failed, naming the target.
        error -> Nullable<Text>,
        /// The kind of failure (`unauthorized`, `no-space`...).
        error_kind -> Nullable<Text>,
        /// What was put where, JSON: the library's publication record.
        result -> Nullable<Text>,
        /// The process running the job (`HOST/BOOT/PID/N`).
        worker -> Nullable<Text>,
        /// When that process last showed signs of life (UTC).
        heartbeat_at -> Nullable<Timestamp>,
        /// Creation time (UTC).
        created_at -> Timestamp,
        /// When a worker claimed it (UTC).
        started_at -> Nullable<Timestamp>,
        /// When it ended (UTC).
        finished_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// The contents each scan holds in the blob store: those of its verified overlay, and those
    /// an interrupted upload kept for the next one.
    scan_blobs (scan_id, sha256) {
        /// The scan.
        scan_id -> BigInt,
        /// SHA-256 of the content, lower-case hex.
        sha256 -> Text,
    }
}

diesel::joinable!(scans -> machines (machine_id));
diesel::joinable!(scan_blobs -> scans (scan_id));
diesel::joinable!(images -> scans (scan_id));
diesel::joinable!(publications -> targets (target_id));
diesel::joinable!(publications -> images (image_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    repos,
    machines,
    scans,
    recreated_packages,
    images,
    targets,
    publications,
    scan_blobs
);
