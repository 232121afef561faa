"""``pmviz doctor``: what this machine's kernel offers pmviz."""

from __future__ import annotations

import argparse
import json

from ..features import features


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    f = features()
    if args.json:
        print(json.dumps(f.as_dict(), indent=2))
        return 0
    yes = {True: "yes", False: "no"}
    mechs = f.write_mechanisms
    rows = [
        ("kernel", f.kernel_release),
        ("page size", f"{f.page_size} B"),
        (
            "PAGEMAP_SCAN",
            yes[f.pagemap_scan] + ("" if f.pagemap_scan else " (fallback: classic pagemap)"),
        ),
        (
            "scan backend",
            "PAGEMAP_SCAN ioctl"
            if f.pagemap_scan
            else "classic pagemap fallback (HUGE and WPALLOWED unknown"
            + ("" if f.pfn_visible else ", PFNZERO needs CAP_SYS_ADMIN")
            + ")",
        ),
        (
            "categories",
            f"{int(f.categories):#x} (" + "|".join(c.name or "" for c in f.categories) + ")",
        ),
        ("GUARD category", yes[f.guard]),
        (
            "userfaultfd WP_ASYNC",
            yes[f.uffd_wp_async] + ("" if f.uffd_wp_async else f" ({f.uffd_reason})"),
        ),
        (
            "soft-dirty",
            yes[f.soft_dirty] + ("" if f.soft_dirty else " (CONFIG_MEM_SOFT_DIRTY not set)"),
        ),
        ("write tracking", ", ".join(mechs) if mechs else "none: present/swapped only"),
        ("THP", f.thp_mode),
        ("swap active", yes[f.swap_active]),
        ("PFNs visible", yes[f.pfn_visible] + ("" if f.pfn_visible else " (needs CAP_SYS_ADMIN)")),
        ("user address limit", f"{f.user_address_limit:#x}"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0
