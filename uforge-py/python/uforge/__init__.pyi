"""Type stubs of the uforge module (implemented natively in uforge._uforge)."""

import os
from typing import Any, BinaryIO, Callable, Iterator, Optional, Sequence, Tuple, Union, final

__version__: str

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

_StrPath = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
"""A filesystem path: str, bytes or os.PathLike."""

_ProgressCallback = Callable[[int, int], Any]
"""Called as ``progress(entries, bytes)`` with running totals, at most ~10 times a second and
once more with the final totals. If it raises, it is not called again, the operation runs to
its end, and then the exception is raised instead of the result."""

_StepProgressCallback = Callable[[str, int, int], Any]
"""Called as ``progress(step, entries, bytes)`` by ``Client.run``: once as each step
(``connect``, ``scan``, ``report``, ``overlay``) starts, then with the step's running totals,
which start again at each step (entries and bytes hashed while scanning, members and bytes sent
with the overlay). Otherwise as ``_ProgressCallback``."""

class UforgeError(Exception):
    """Base class of every error uforge raises."""

class IoError(UforgeError):
    """A file or directory could not be read or written (the message names it)."""

class ReportError(UforgeError):
    """A report (or an analysis document) is malformed, truncated or not a report at all."""

class RepoError(UforgeError):
    """A package repository could not be opened, fetched, verified or parsed."""

class OverlayError(UforgeError):
    """An overlay could not be written faithfully.

    When files changed between the scan and the overlay, the archive was still written
    completely, carrying them as they are now (or recording them as vanished), and the
    exception carries ``changed`` and ``stats``."""

    changed: list[ScanError]
    """The files that changed since the scan, ``op`` ``amended`` or ``vanished`` (only on
    that failure)."""
    stats: dict[str, int]
    """The overlay's statistics, as ``write_overlay`` returns them (only on that failure)."""

class PackageDbError(UforgeError):
    """A package manager's database could not be parsed."""

class InvalidError(UforgeError):
    """The request cannot be carried out as given (a bad exclude, a root that is not a
    directory...)."""

class UnsatisfiableError(UforgeError):
    """A template's packages cannot be installed together from its repositories."""

    problems: list[str]
    """Each problem in one sentence naming the packages and relations at fault."""

class ClientError(UforgeError):
    """Talking to a uforge server failed: it could not be reached (connection, TLS,
    certificate), answered an HTTP error, or answered something the API does not allow.

    The message names the request and carries the server's own message."""

    status: Optional[int]
    """The HTTP status when the server answered with an error, None otherwise."""

class AuthError(ClientError):
    """The server refused the credentials (HTTP 401): a wrong, revoked or malformed token, or a
    user name that does not own it."""

class NotFoundError(ClientError):
    """The server has no such object for this user (HTTP 404). Another user's repository,
    machine or scan is not found either."""

@final
class OsInfo:
    """Operating system identity, from os-release."""

    id: Optional[str]
    """``ID`` (``debian``, ``ubuntu``...)."""
    version_id: Optional[str]
    """``VERSION_ID`` (``12``)."""
    version_codename: Optional[str]
    """``VERSION_CODENAME`` (``bookworm``)."""
    pretty_name: Optional[str]
    """``PRETTY_NAME``."""
    id_like: list[str]
    """``ID_LIKE``, split on whitespace."""

@final
class Keyboard:
    """Console keyboard settings."""

    layout: str
    """Layout (``fr``), or a console keymap name."""
    variant: Optional[str]
    """Layout variant."""
    model: Optional[str]
    """Keyboard model."""
    options: Optional[str]
    """XKB options."""

@final
class Kernel:
    """An installed kernel."""

    version: str
    """Kernel release (``6.1.0-28-amd64``)."""
    image: Optional[str]
    """Path of the kernel image."""
    initrd: Optional[str]
    """Path of the initial ramdisk."""
    has_modules: bool
    """Whether ``/lib/modules/VERSION`` exists."""
    package: Optional[str]
    """Package owning the image."""

@final
class Mount:
    """A mounted (live scan) or configured (fstab) filesystem."""

    source: str
    """What is mounted: a device, ``UUID=...``, a remote share."""
    target: str
    """Mount point."""
    fstype: str
    """Filesystem type."""
    options: str
    """Mount options, comma separated."""
    uuid: Optional[str]
    """Filesystem UUID."""
    origin: str
    """Where the entry came from: ``mountinfo`` or ``fstab``."""

@final
class Partition:
    """A block device or partition (live scans only)."""

    name: str
    """Kernel name (``vda1``)."""
    parent: Optional[str]
    """Parent disk of a partition."""
    number: Optional[int]
    """Partition number."""
    size: int
    """Size in bytes."""
    uuid: Optional[str]
    """Filesystem UUID."""
    fstype: Optional[str]
    """Filesystem type."""

@final
class NetworkInterface:
    """The configuration of one network interface."""

    name: str
    """Interface name (``ens3``), or the connection id where no name is set."""
    source: str
    """``ifupdown``, ``netplan``, ``networkmanager``, ``networkd`` or ``ifcfg``."""
    file: str
    """Configuration file it came from."""
    method: str
    """``static``, ``dhcp``, ``auto``, ``loopback`` or ``manual``."""
    addresses: list[str]
    """Static addresses in CIDR form."""
    gateway: Optional[str]
    """Default gateway."""
    dns: list[str]
    """DNS servers."""
    mac: Optional[str]
    """Hardware address the configuration is bound to."""

@final
class User:
    """A local user (no password data)."""

    name: str
    """Login name."""
    uid: int
    """User id."""
    gid: int
    """Primary group id."""
    gecos: str
    """GECOS field."""
    home: str
    """Home directory."""
    shell: str
    """Login shell."""

@final
class Group:
    """A local group."""

    name: str
    """Group name."""
    gid: int
    """Group id."""
    members: list[str]
    """Supplementary members."""

@final
class Machine:
    """Everything a scan learned about the machine, apart from its files."""

    os: OsInfo
    """Operating system identity."""
    arch: str
    """Architecture in kernel naming (``x86_64``)."""
    package_arch: Optional[str]
    """The package manager's name for it (``amd64``)."""
    kernels: list[Kernel]
    """Installed kernels."""
    mounts: list[Mount]
    """Mounted or configured filesystems."""
    partitions: list[Partition]
    """Block devices and partitions."""
    timezone: Optional[str]
    """Time zone (``Europe/Paris``)."""
    keyboard: Optional[Keyboard]
    """Console keyboard."""
    locale: Optional[str]
    """System locale (``LANG``)."""
    hostname: Optional[str]
    """Host name."""
    network: list[NetworkInterface]
    """Network configuration, one entry per interface."""
    users: list[User]
    """Local users."""
    groups: list[Group]
    """Local groups."""

@final
class Package:
    """A native package installed on the machine."""

    name: str
    """Package name."""
    version: str
    """Exact version (``1.22.1-9+deb12u1``)."""
    arch: str
    """Package architecture (``amd64``, ``all``)."""
    manager: str
    """Package manager (``dpkg``)."""
    status: str
    """The package manager's state (``installed``, ``config-files``...)."""
    source: Optional[str]
    """Source package name when it differs from the binary name."""
    auto: bool
    """Whether it was installed only as a dependency."""

@final
class ScanError:
    """A path the scan (or an overlay) could not record fully, and why."""

    path: bytes
    """The in-root path concerned."""
    op: str
    """What failed (``read``, ``stat``, ``vanished``...)."""
    message: str
    """The error message."""

@final
class Exclude:
    """A path left out of the scan."""

    path: bytes
    """In-root path."""
    contents_only: bool
    """True when only the directory's contents are skipped, the directory itself kept."""
    reason: str
    """Why (``pseudo filesystem``, ``temporary files``, ``excluded by the user``...)."""

@final
class ScanInfo:
    """How a scan was run."""

    root: bytes
    """The scanned root as given."""
    live: bool
    """Whether the running system itself was scanned."""
    started: int
    """Scan start, seconds since the epoch."""
    tool: str
    """Program that wrote the report."""
    excludes: list[Exclude]
    """Everything left out."""

@final
class FileEntry:
    """One filesystem object of the scanned root. Attributes are converted when read."""

    @property
    def path(self) -> bytes:
        """Absolute in-root path, raw bytes (``b"/etc/passwd"``)."""
    @property
    def path_str(self) -> Optional[str]:
        """The path as text, or None when it is not valid UTF-8."""
    @property
    def kind(self) -> str:
        """``file``, ``dir``, ``symlink``, ``hardlink``, ``fifo``, ``socket``, ``char`` or
        ``block``."""
    @property
    def mode(self) -> int:
        """Permission bits including setuid, setgid and sticky (``st_mode & 0o7777``)."""
    @property
    def uid(self) -> int:
        """Owner id."""
    @property
    def gid(self) -> int:
        """Group id."""
    @property
    def user(self) -> Optional[str]:
        """Owner name from the scanned root's passwd."""
    @property
    def group(self) -> Optional[str]:
        """Group name from the scanned root's group file."""
    @property
    def size(self) -> int:
        """Size in bytes (``st_size``)."""
    @property
    def allocated(self) -> int:
        """Bytes allocated on disk; below ``size`` for sparse files."""
    @property
    def mtime(self) -> int:
        """Modification time, seconds since the epoch."""
    @property
    def mtime_nsec(self) -> int:
        """Nanoseconds part of the modification time."""
    @property
    def sha256(self) -> Optional[str]:
        """SHA-256 of the content in lower-case hex (regular files and hard links)."""
    @property
    def target(self) -> Optional[bytes]:
        """Symlink target, or for a hard link the path of the inode's first name."""
    @property
    def rdev(self) -> Optional[Tuple[int, int]]:
        """``(major, minor)`` of a character or block device."""
    @property
    def xattrs(self) -> dict[str, bytes]:
        """Extended attributes (file capabilities included): name to raw value."""
    @property
    def package(self) -> Optional[str]:
        """Name of the package owning the path."""

@final
class FileIterator(Iterator[FileEntry]):
    """Iterates over a report's file entries in scan order, decoding one entry per step.

    Raises ReportError if the report turns out to be corrupt part way."""

    def __iter__(self) -> FileIterator: ...
    def __next__(self) -> FileEntry: ...

@final
class Report:
    """The result of a scan: machine facts, packages, and every file with its metadata.

    Obtained from ``scan``, ``Report.load`` or ``Report.from_bytes``. The files are kept
    compressed in memory (the native report encoding) and decoded one at a time by
    ``files()``."""

    @property
    def machine(self) -> Machine:
        """Machine facts: OS, architecture, kernels, mounts, network, users..."""
    @property
    def packages(self) -> list[Package]:
        """Native packages, as a new list on each access."""
    @property
    def scan_info(self) -> ScanInfo:
        """How the scan was run: root, live or not, start time, tool, excludes."""
    @property
    def errors(self) -> list[ScanError]:
        """Paths the scan could not record fully."""
    @property
    def stats(self) -> dict[str, int]:
        """Totals: ``entries``, ``files``, ``dirs``, ``bytes``, ``packaged``, ``errors``,
        ``duration_ms``."""
    @property
    def index_archs(self) -> list[str]:
        """The architectures whose repository indexes an analysis of this report needs (the
        machine's, any other its packages use, and ``all``)."""
    def files(self) -> FileIterator:
        """A lazy iterator over the file entries, in scan order (parents before children).
        Each call starts again from the first entry."""
    def save(self, path: _StrPath) -> None:
        """Saves the report: JSON when the name ends in ``.json``, the native form otherwise.
        Raises IoError."""
    @staticmethod
    def load(path: _StrPath) -> Report:
        """Loads a report file, native or JSON (detected from its content). Raises IoError,
        or ReportError (naming the file) when it is not a valid report."""
    @staticmethod
    def from_bytes(data: bytes) -> Report:
        """A report from the content of a report file (native or JSON). Raises ReportError."""
    def to_bytes(self) -> bytes:
        """The native encoding, as ``save`` writes it to a name not ending in ``.json``."""
    def to_json(self) -> str:
        """The JSON form (``schema/uforge-report-v1.schema.json``)."""

def scan(
    root: _StrPath = "/",
    exclude: Sequence[_StrPath] = (),
    progress: Optional[_ProgressCallback] = None,
    *,
    default_excludes: bool = True,
    threads: int = 0,
) -> Report:
    """Scans a root directory: machine facts, packages, and every file with its metadata,
    SHA-256, xattrs and owning package. The GIL is released while scanning.

    ``exclude`` lists in-root paths to leave out entirely (``/srv/cache``). With
    ``default_excludes`` the contents of ``/proc``, ``/sys``, ``/dev``, ``/run``, ``/tmp``... are
    skipped (and pseudo and network filesystems on a live system). ``threads`` hashing threads
    (0: one per core). ``progress(entries, bytes)`` gets running totals; see
    ``_ProgressCallback``. Problems with single paths are recorded in ``Report.errors``; only an
    unreadable root fails (IoError, InvalidError)."""

@final
class RepoIndex:
    """Package repositories opened from sources.list lines, with their signed indexes fetched,
    verified and cached."""

    @staticmethod
    def from_sources(
        lines: Sequence[str],
        cache_dir: _StrPath,
        keyring: Optional[_StrPath] = None,
        archs: Optional[Sequence[str]] = None,
        files: Optional[Sequence[_StrPath]] = None,
    ) -> RepoIndex:
        """Opens every repository named by a sources.list line
        (``deb http://deb.debian.org/debian bookworm main``; ``[trusted=yes]``, ``[arch=...]``,
        ``[signed-by=...]`` and ``[check-valid-until=no]`` options are understood), then those
        of ``files``: sources files in either apt form, one-line or deb822 (``.sources``).

        ``cache_dir`` holds indexes, ``.deb`` files and manifests across runs. ``keyring``
        signs repositories whose line has no ``signed-by`` (default: the Debian archive
        keyring). ``archs``: architectures whose indexes are read (default ``amd64`` and
        ``all``; see ``Report.index_archs``). Raises RepoError naming the line that failed. The
        GIL is released while fetching."""
    @property
    def names(self) -> list[str]:
        """The repositories, named by their sources lines."""
    def has(self, name: str, version: str, arch: str) -> bool:
        """Whether a repository carries exactly this package."""
    def __len__(self) -> int: ...

@final
class ModifiedFile:
    """A package file that differs from what its package ships."""

    path: bytes
    """In-root path."""
    package: str
    """The owning package (``name``, or ``name:arch`` for a foreign architecture)."""
    change: str
    """``content``, ``metadata``, ``target``, ``kind`` or ``unshipped``."""

@final
class DeletedFile:
    """A file a package ships that is absent from the machine."""

    path: bytes
    """In-root path."""
    package: str
    """The package that ships it."""

@final
class Analysis:
    """What no repository can rebuild: the answer of ``analyze``."""

    @property
    def missing_packages(self) -> list[Tuple[str, str, str]]:
        """Installed packages no repository and no earlier scan holds, as
        ``(name, version, arch)``."""
    @property
    def modified_files(self) -> list[ModifiedFile]:
        """Package files that differ from the official package."""
    @property
    def deleted_files(self) -> list[DeletedFile]:
        """Files packages ship that are absent from the machine."""
    @property
    def unknown_files(self) -> list[bytes]:
        """Paths owned by no package (less what earlier scans hold unchanged)."""
    @property
    def wanted(self) -> list[bytes]:
        """Exactly the paths the overlay must carry, in report order."""
    @property
    def stats(self) -> dict[str, int]:
        """Totals: ``packages``, ``from_repositories``, ``from_previous``, ``entries``,
        ``held``, ``wanted_bytes``."""
    def to_json(self) -> str:
        """The JSON document (``"format": "uforge-analysis"``), as ``uforge-scan analyze``
        writes it."""
    @staticmethod
    def from_json(text: str) -> Analysis:
        """Reads the JSON document; raises ReportError when it is not a valid analysis."""

def analyze(
    report: Report,
    repos: Union[RepoIndex, Sequence[RepoIndex]],
    previous: Sequence[Report] = (),
    progress: Optional[_ProgressCallback] = None,
) -> Analysis:
    """Analyses a report against repositories and earlier scans of the same machine: packages
    no repository has, package files whose bytes differ from the official ``.deb``, deleted
    package files, files no package owns, and the exact paths the overlay must carry. What an
    earlier scan in ``previous`` already holds unchanged is not wanted again. The GIL is
    released; ``.deb`` files are fetched (and cached) as needed. Raises RepoError."""

def write_overlay(
    report: Report,
    analysis: Analysis,
    dest: Union[_StrPath, BinaryIO],
    root: Optional[_StrPath] = None,
    progress: Optional[_ProgressCallback] = None,
) -> dict[str, int]:
    """Streams a POSIX pax tar of exactly ``analysis.wanted`` to ``dest``: a path (created or
    truncated) or a binary file object with ``write`` (called with chunks of about 1 MiB, the
    GIL taken for each). Metadata comes from the report, contents from ``root`` (default: the
    root the report was scanned from), checked against the report's digests as they stream.

    Returns ``{"members", "bytes", "content_bytes", "skipped"}``. Raises OverlayError (with
    ``changed`` and ``stats``) when files changed since the scan: the archive is complete
    without them; scan again. An exception raised by ``dest.write`` propagates as is."""

def compare(a: Report, b: Report) -> dict[str, Any]:
    """Compares two reports: ``{"packages": [{"name", "before", "after"}], "files": [{"path"
    or "path_b64", "status", "what"}]}`` (as ``uforge-scan compare --json`` prints)."""

@final
class ResolvedPackage:
    """One package of a checked template's install set."""

    name: str
    version: str
    """The exact version installed."""
    arch: str
    reason: str
    """Why it is installed: ``pinned``, ``free``, ``ospkg`` (a My Software ``.deb``),
    ``essential`` or ``dependency``."""
    needed_by: Optional[str]
    """For a ``dependency``: the package that needs it."""

@final
class DroppedPackage:
    """A template package the check left out (an ``auto`` one the repositories no longer
    carry or that cannot fit)."""

    package: str
    """The template's entry in apt's syntax (``name``, ``name:arch=version``)."""
    why: str

@final
class CheckResult:
    """The outcome of ``Template.check``: the packages that install together."""

    packages: list[ResolvedPackage]
    """Every package an image build of the template installs."""
    added: list[ResolvedPackage]
    """Those the template does not list: dependencies and essential packages."""
    dropped: list[DroppedPackage]
    """Template packages left out, and why."""

@final
class Template:
    """An appliance template (white-box migration): OS profile, install profile, My Software,
    boot scripts, in the file form of ``schema/uforge-template-v1.schema.json``.

    Its contents (files, scripts, ``.deb``s) stay in the ``files/`` directory it was loaded
    from; ``save`` copies them with the template. Templates compare equal when their data
    and contents directory are."""

    @staticmethod
    def load(path: _StrPath) -> Template:
        """Reads a template directory (``template.yml`` and ``files/``), given by the
        directory or its ``template.yml``. Raises InvalidError naming the line and column of a
        YAML mistake, or a content missing from ``files/``."""
    @staticmethod
    def from_yaml(text: str, files: Optional[_StrPath] = None) -> Template:
        """Reads a template from the text of a ``template.yml``; ``files`` is the directory
        its contents are in, if it has any."""
    @staticmethod
    def from_dict(data: dict[str, Any], files: Optional[_StrPath] = None) -> Template:
        """Makes a template from data of the shape ``to_dict`` gives. Raises ValueError
        naming a field of the wrong shape, InvalidError for a package listed twice and the
        like."""
    def to_yaml(self) -> str:
        """The text of ``template.yml``, in canonical order (sorted, one package per line)."""
    def to_dict(self) -> dict[str, Any]:
        """The template as plain data: the ``stack`` of ``template.yml``."""
    def save(self, dir: _StrPath) -> None:
        """Writes ``files/`` (every content the template refers to) and then ``template.yml``
        to ``dir`` (created if needed). Contents given by ``source`` are stored under their
        digest. The template then reads its contents from ``dir``."""
    def check(self, cache_dir: _StrPath, keyring: Optional[_StrPath] = None) -> CheckResult:
        """Checks that the packages install together from the template's repositories
        (signed indexes fetched and cached in ``cache_dir``): Depends, Pre-Depends,
        Conflicts, Breaks and Provides honoured, pinned packages kept at their version, free
        ones at the newest that fits, missing dependencies added. Raises UnsatisfiableError
        naming the packages and relations at fault, RepoError when a repository cannot be
        read. The GIL is released."""
    name: str
    version: str
    description: str
    @property
    def distribution(self) -> str: ...
    release: str
    """Setting another release moves the template to it: repositories written with
    ``{release}`` follow; pinned packages keep their versions (see ``unpin``)."""
    @property
    def arch(self) -> str: ...
    repositories: list[str]
    """sources.list lines; ``{release}`` stands for the release."""
    @property
    def packages(self) -> list[str]:
        """The OS profile's packages in apt's syntax (``name``, ``name:arch=version``),
        sorted."""
    def add_package(
        self, name: str, version: Optional[str] = None, arch: Optional[str] = None
    ) -> None:
        """Adds a package: free (newest at check and generation) unless ``version`` pins it.
        Entries of the same name (of that architecture when ``arch`` is given) are
        replaced."""
    def remove_package(self, name: str, arch: Optional[str] = None) -> None:
        """Removes a package (every architecture of it unless ``arch`` says which). Raises
        KeyError when the template does not list it."""
    def unpin(self, names: Optional[Sequence[str]] = None) -> None:
        """Frees pinned packages (all, or those named), as when moving to another release."""

@final
class Client:
    """An authenticated connection to a uforge server (``docs/api.md``).

    ``url`` is the server's ``https://`` address, ``token`` an API token (``uforge-server user
    add NAME`` prints one). A self-signed server is trusted through its certificate in
    ``cacert`` (a PEM file: the server's ``DATA_DIR/tls/cert.pem``); ``insecure`` accepts any
    certificate (tests only: anyone could impersonate the server). With ``user``, the token is
    sent with the user name (HTTP Basic) and the server checks that the name owns it.

    Nothing is sent until a method is called; ClientError is raised here only when ``url`` is
    not ``https://`` or ``cacert`` cannot be read. Methods block, release the GIL while they
    wait, and raise ClientError (AuthError on 401, NotFoundError on 404). A client may be
    shared between threads."""

    def __new__(
        cls,
        url: str,
        token: str,
        cacert: Optional[_StrPath] = None,
        user: Optional[str] = None,
        insecure: bool = False,
    ) -> Client: ...
    @property
    def url(self) -> str:
        """The server's URL, as given."""
    @property
    def user(self) -> Optional[str]:
        """The user name sent with the token, or None."""
    def health(self) -> dict[str, Any]:
        """Checks the connection and the credentials: ``{"status": "ok", "version", "user"}``."""
    def repos(self) -> list[dict[str, Any]]:
        """The user's repositories: ``[{"id", "line", "packages", "synced_at"}]``
        (``packages`` and ``synced_at`` are None until the repository is synced)."""
    def repo_add(self, line: str) -> dict[str, Any]:
        """Registers a repository by its sources.list line
        (``deb http://deb.debian.org/debian bookworm main``) and returns it as ``repos()``
        lists it. Analyses use it once it is synced."""
    def repo_sync(self, id: int) -> dict[str, Any]:
        """Has the server fetch, verify and cache the repository's index now; returns the
        repository with its package count. Slow the first time for a large mirror."""
    def repo_delete(self, id: int) -> None:
        """Removes a repository."""
    def machines(self) -> list[dict[str, Any]]:
        """The user's machines: ``[{"name", "scans", "last_scan"}]``."""
    def scans(self, machine: Optional[str] = None) -> list[dict[str, Any]]:
        """The user's scans, newest first, of one machine when ``machine`` is given. Each is
        ``{"id", "machine", "status", "created_at", "completed_at", "summary"}``."""
    def scan(self, id: int) -> dict[str, Any]:
        """One scan, as ``scans()`` lists it; ``status`` is ``created``, ``analyzed`` or
        ``complete``."""
    def analysis(self, id: int) -> Analysis:
        """The stored analysis of a scan (the class ``analyze`` returns)."""
    def compare(self, a: int, b: int) -> dict[str, Any]:
        """Differences between two scans: ``{"packages": [...], "files": [...]}``, the shape
        of ``uforge.compare``."""
    def delete_scan(self, id: int) -> None:
        """Deletes a scan."""
    def packages(self) -> list[dict[str, Any]]:
        """The packages the server recreated for the user:
        ``[{"name", "version", "arch", "file", "sha256", "scan"}]``."""
    def add_target(
        self,
        name: str,
        url: str,
        *,
        options: Optional[dict[str, str]] = None,
        credentials: Optional[dict[str, Any]] = None,
        ca_pem: Optional[str] = None,
        kind: Optional[str] = None,
    ) -> dict[str, Any]:
        """Adds a publish target and returns it as ``targets()`` lists it: ``{"id", "name",
        "type", "url", "options", "description", "ca_pem_set", "credentials_set", "formats",
        "provisions", "created_at"}``. ``url`` is ``oci://HOST/NAMESPACE``,
        ``s3://BUCKET/PREFIX/``, ``dir:///PATH`` or ``libvirt:///system``; ``options`` the
        URL kind's options (``{"endpoint": ..., "region": ...}``); ``credentials`` a dict
        such as ``{"type": "password", "username": ..., "password": ...}`` (types ``token``,
        ``access-key``). The server seals the credentials and never returns them."""
    def targets(self) -> list[dict[str, Any]]:
        """The user's targets, by name."""
    def target(self, name: str) -> dict[str, Any]:
        """One target, by name (or id, as a string)."""
    def set_target_credentials(self, name: str, credentials: dict[str, Any]) -> dict[str, Any]:
        """Replaces a target's credentials (a dict, as for ``add_target``)."""
    def delete_target(self, name: str) -> None:
        """Deletes a target (refused while publications to it are recorded)."""
    def publish(
        self,
        image: int,
        target: str,
        *,
        name: Optional[str] = None,
        tag: Optional[str] = None,
        start: Optional[bool] = None,
        memory: Optional[int] = None,
        cpus: Optional[int] = None,
        firmware: Optional[str] = None,
    ) -> dict[str, Any]:
        """Queues the publication of a finished image to one of the user's targets and
        returns the job: ``{"id", "image", "target", "name", "deploy", "status", "phase",
        "progress": {"bytes", "total_bytes", "percent"}, "error", "error_kind", "location",
        "digest", "size", "sent", "instance", "created_at", "started_at", "finished_at"}``.
        ``tag`` is a registry tag; ``start``, ``memory`` (MiB), ``cpus`` and ``firmware``
        deploy the image on a libvirt target."""
    def publications(self, image: Optional[int] = None) -> list[dict[str, Any]]:
        """The user's publications, newest first, of one image when ``image`` is given."""
    def publication(self, id: int) -> dict[str, Any]:
        """One publication, as ``publish`` returns it."""
    def retry_publication(self, id: int) -> dict[str, Any]:
        """Queues a failed publication again; it resumes what was sent."""
    def delete_publication(self, id: int) -> None:
        """Deletes a publication and what it pushed; ClientError with status 502, naming the
        target, when the target refuses."""
    def run(
        self,
        name: str,
        root: _StrPath = "/",
        exclude: Sequence[_StrPath] = (),
        progress: Optional[_StepProgressCallback] = None,
        *,
        default_excludes: bool = True,
        threads: int = 0,
    ) -> dict[str, Any]:
        """Runs the live scan of ``root`` as machine ``name``: checks the connection, scans the
        root into a report held in memory, posts it, and streams the overlay of exactly what
        the server's analysis wants from the disk to the server, which stores it and recreates
        the packages no repository has. Nothing is written on the scanned machine. A second
        run with the same name ships only what changed; a run after a failed one finishes the
        unfinished scan, sending only the files whose content the server does not hold yet.

        ``exclude``, ``default_excludes`` and ``threads`` are those of ``scan``; ``progress``:
        see ``_StepProgressCallback``.

        Returns ``{"scan_id": int, "report_bytes": int, "analysis": Analysis, "stats": the
        analysis statistics, "overlay": the overlay statistics as write_overlay returns them,
        "result": the server's answer to the overlay ({"status": "complete", "members",
        "blobs", "content_bytes", "held", "held_bytes", "received_bytes", "recreated":
        [{"name", "version", "arch", "file"}]}), "skipped_files": int, "skipped_bytes": int
        (wanted files not sent because the server already held their content)}``.
        Raises ClientError, or IoError and InvalidError for a root that cannot be scanned or
        files that changed during the scan."""
