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

A uforge server does the analysis and keeps the overlays; ``uforge.Client`` talks to it and
runs the live scan::

    client = uforge.Client("https://uforge.example:8443", token, cacert="cert.pem")
    result = client.run("web01", root="/")
    print(result["scan_id"], result["analysis"].missing_packages, result["result"]["recreated"])

A scan imported as an appliance template (``uforge template from-scan``) is edited and
checked from Python::

    t = uforge.Template.load("web01")
    t.add_package("redis-server")
    t.remove_package("nano")
    print([p.name for p in t.check(cache_dir="/var/cache/uforge").added])
    t.save("web01")

Long operations release the GIL. Paths of the scanned machine are ``bytes`` (Linux file names
need not be UTF-8); ``FileEntry.path_str`` gives text where there is one.
"""

from ._uforge import (
    Analysis,
    AuthError,
    CheckResult,
    Client,
    ClientError,
    DeletedFile,
    DroppedPackage,
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
    NotFoundError,
    OsInfo,
    OverlayError,
    Package,
    PackageDbError,
    Partition,
    RepoError,
    RepoIndex,
    Report,
    ReportError,
    ResolvedPackage,
    ScanError,
    ScanInfo,
    Template,
    UforgeError,
    UnsatisfiableError,
    User,
    __version__,
    analyze,
    compare,
    scan,
    write_overlay,
)

__all__ = [
    "Analysis",
    "AuthError",
    "CheckResult",
    "Client",
    "ClientError",
    "DeletedFile",
    "DroppedPackage",
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
    "NotFoundError",
    "OsInfo",
    "OverlayError",
    "Package",
    "PackageDbError",
    "Partition",
    "RepoError",
    "RepoIndex",
    "Report",
    "ReportError",
    "ResolvedPackage",
    "ScanError",
    "ScanInfo",
    "Template",
    "UforgeError",
    "UnsatisfiableError",
    "User",
    "__version__",
    "analyze",
    "compare",
    "scan",
    "write_overlay",
]
