"""Runs the live scan of a machine against a uforge server with the uforge Python module, then
shows what the server holds: the scan, its differences from the previous scan of the same
machine, and the packages it recreated.

    pip install ./uforge-py
    export UFORGE_TOKEN=...            # printed by `uforge-server user add NAME`
    python examples/python_client.py https://uforge.example:8443 web01 / \
        --cacert /var/lib/uforge/tls/cert.pem \
        --repo 'deb http://deb.debian.org/debian bookworm main'
"""

import argparse
import os
import sys

import uforge


def progress(step, entries, size):
    what = "members" if step == "overlay" else "entries"
    print(f"\r  {step:<8} {entries} {what}, {size / 1048576:.0f} MiB   ", end="", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description="Scan a machine into a uforge server.")
    ap.add_argument("url", help="the server, https://host:port")
    ap.add_argument("name", help="the machine's name on the server")
    ap.add_argument("root", nargs="?", default="/")
    ap.add_argument("--cacert", help="the server's certificate, when it is self-signed")
    ap.add_argument("--user", help="the token's user name")
    ap.add_argument("--exclude", action="append", default=[], help="an in-root path to skip")
    ap.add_argument("--repo", action="append", default=[], help="a sources.list line to add")
    args = ap.parse_args()
    token = os.environ.get("UFORGE_TOKEN") or sys.exit("set UFORGE_TOKEN to an API token")

    client = uforge.Client(args.url, token, cacert=args.cacert, user=args.user)
    try:
        print(f"connected as {client.health()['user']}")
        # Analyses use the user's synced repositories: add the missing ones once.
        known = {r["line"]: r for r in client.repos()}
        for line in args.repo:
            repo = known.get(line) or client.repo_add(line)
            if repo["synced_at"] is None:
                print(f"syncing {line} (the first time takes a while)")
                repo = client.repo_sync(repo["id"])
            print(f"  {line}: {repo['packages']} packages")

        earlier = client.scans(machine=args.name)
        result = client.run(args.name, root=args.root, exclude=args.exclude, progress=progress)
        print(file=sys.stderr)
    except uforge.AuthError as e:
        sys.exit(f"the server refused the token: {e}")
    except uforge.ClientError as e:
        sys.exit(f"uforge: {e}")

    a = result["analysis"]
    s = result["stats"]
    print(
        f"scan {result['scan_id']} of {args.name}: {result['result']['status']}; "
        f"{len(a.wanted)} of {s['entries']} entries shipped "
        f"({result['overlay']['bytes'] / 1048576:.1f} MiB), {s['held']} held by earlier scans"
    )
    for name, version, arch in a.missing_packages:
        print(f"  missing from every repository: {name} {version} {arch}")
    for p in result["result"]["recreated"]:
        print(f"  recreated {p['file']}")

    # The newest complete scan before this one, if any: what changed since.
    previous = [x for x in earlier if x["status"] == "complete" and x["id"] != result["scan_id"]]
    if previous:
        diff = client.compare(previous[0]["id"], result["scan_id"])
        print(f"since scan {previous[0]['id']}:")
        for p in diff["packages"]:
            print(f"  package {p['name']}: {p['before']} -> {p['after']}")
        for f in diff["files"][:20]:
            print(f"  {f['status']:<8} {f.get('path') or f.get('path_b64')}")
    for m in client.machines():
        print(f"machine {m['name']}: {m['scans']} scans, last {m['last_scan']}")
    print(f"{len(client.packages())} recreated packages on the server")


if __name__ == "__main__":
    main()
