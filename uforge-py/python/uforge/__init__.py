"""uforge: migrate Linux machines.

Scan a machine into a report, analyse the report against package repositories, and stream an
overlay tar of what the repositories cannot rebuild::

    import uforge

    report = uforge.scan("/srv/rootfs")
    repos = uforge.RepoIndex.from_sources(
        ["deb http://deb.debian.org/debian bookworm main"],
        cache_dir="/var/cache/uforge",
        archs=report.index_archs,
    )
    analysis = uforge.analyze(report, repos)
    with open("overlay.tar", "wb") as f:
        uforge.write_overlay(report, analysis, f)

Long operations release the GIL. Paths of the scanned machine are ``bytes`` (Linux file names
need not be UTF-8); ``FileEntry.path_str`` gives text where there is one.
"""

from ._uforge import (
    Analysis,
    DeletedFile,
    Exclude,
    FileEntry,
    FileIterator,
    Group,
    InvalidError,
    IoError,
    Kernel,
    Keyboard,
    Machine,
    ModifiedFile,
    Mount,
    NetworkInterface,
    OsInfo,
    OverlayError,
    Package,
    PackageDbError,
    Partition,
    RepoError,
    RepoIndex,
    Report,
    ReportError,
    ScanError,
    ScanInfo,
    UforgeError,
    User,
    __version__,
    analyze,
    compare,
    scan,
    write_overlay,
)

# The HTTP client for a uforge server (``uforge.Client``) joins these exports once the client
# library lands; it is native too and registered in src/lib.rs.

__all__ = [
    "Analysis",
    "DeletedFile",
    "Exclude",
    "FileEntry",
    "FileIterator",
    "Group",
    "InvalidError",
    "IoError",
    "Kernel",
    "Keyboard",
    "Machine",
    "ModifiedFile",
    "Mount",
    "NetworkInterface",
    "OsInfo",
    "OverlayError",
    "Package",
    "PackageDbError",
    "Partition",
    "RepoError",
    "RepoIndex",
    "Report",
    "ReportError",
    "ScanError",
    "ScanInfo",
    "UforgeError",
    "User",
    "__version__",
    "analyze",
    "compare",
    "scan",
    "write_overlay",
]
