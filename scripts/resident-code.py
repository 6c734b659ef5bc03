#!/usr/bin/env python3
"""Which crates' code and read-only data a running process keeps resident.

Usage: scripts/resident-code.py PID [BINARY]

Reads the process's mappings of its executable (/proc/PID/maps), asks
/proc/PID/pagemap which of their pages are present, and attributes each
present page to the symbol (from `nm`) that covers most of it, grouped by
crate (the first path segment of the demangled name). Pages no symbol
covers (string constants, unwind tables, relocations) are grouped by the
ELF section they fall in. Needs only read access to the process: the
present bit of pagemap is readable by its owner.
"""

import bisect
import collections
import os
import re
import struct
import subprocess
import sys

PAGE = os.sysconf("SC_PAGE_SIZE")


def mappings(pid, binary):
    """(start, end, file offset, perms) of each mapping of `binary`."""
    real = os.path.realpath(binary)
    out = []
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) >= 6 and os.path.realpath(fields[5]) == real:
                start, end = (int(x, 16) for x in fields[0].split("-"))
                out.append((start, end, int(fields[2], 16), fields[1]))
    return out


def present_pages(pid, start, end):
    with open(f"/proc/{pid}/pagemap", "rb") as pagemap:
        pagemap.seek(start // PAGE * 8)
        data = pagemap.read((end - start) // PAGE * 8)
    for i in range(len(data) // 8):
        (entry,) = struct.unpack_from("<Q", data, i * 8)
        if entry >> 63 & 1:
            yield start + i * PAGE


def segments(binary):
    """(vaddr, file offset, size) of each LOAD segment."""
    out = []
    text = subprocess.run(["readelf", "-lW", binary], capture_output=True, text=True, check=True).stdout
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "LOAD":
            out.append((int(fields[2], 16), int(fields[1], 16), int(fields[4], 16)))
    return out


def sections(binary):
    out = []
    text = subprocess.run(["readelf", "-SW", binary], capture_output=True, text=True, check=True).stdout
    for line in text.splitlines():
        match = re.match(r"\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)", line)
        if match and int(match.group(2), 16):
            out.append((int(match.group(2), 16), int(match.group(3), 16), match.group(1)))
    return sorted(out)


def crate_of(name):
    name = name.lstrip("<&*( ")
    name = re.sub(r"^(impl |dyn |mut |const )+", "", name)
    segment = re.split(r"::|[<> ,(]", name, maxsplit=1)[0]
    return segment or "?"


def symbols(binary):
    text = subprocess.run(["nm", "-S", "-C", "--defined-only", binary], capture_output=True, text=True, check=True).stdout
    out = []
    for line in text.splitlines():
        parts = line.split(" ", 3)
        if len(parts) == 4 and all(c in "0123456789abcdef" for c in parts[0] + parts[1]):
            out.append((int(parts[0], 16), int(parts[1], 16), crate_of(parts[3])))
    out.sort()
    return out


def main():
    pid = int(sys.argv[1])
    binary = sys.argv[2] if len(sys.argv) > 2 else os.readlink(f"/proc/{pid}/exe")
    loads = segments(binary)
    by_section = sections(binary)
    section_starts = [s[0] for s in by_section]
    syms = symbols(binary)
    starts = [s[0] for s in syms]
    resident = collections.Counter()
    for start, end, offset, perms in mappings(pid, binary):
        # The load bias: where the segment holding this file offset landed.
        segment = next((s for s in loads if s[1] <= offset < s[1] + max(s[2], PAGE)), None)
        if segment is None:
            continue
        bias = start - (segment[0] - (segment[1] - offset))
        for page in present_pages(pid, start, end):
            vaddr = page - bias
            # Bytes of this page each crate's symbols cover.
            cover = collections.Counter()
            i = max(bisect.bisect_right(starts, vaddr) - 1, 0)
            while i < len(syms) and syms[i][0] < vaddr + PAGE:
                s_start, s_size, crate = syms[i]
                overlap = min(s_start + s_size, vaddr + PAGE) - max(s_start, vaddr)
                if overlap > 0:
                    cover[crate] += overlap
                i += 1
            if cover:
                resident[cover.most_common(1)[0][0]] += PAGE
            else:
                j = bisect.bisect_right(section_starts, vaddr) - 1
                name = by_section[j][2] if j >= 0 and vaddr < by_section[j][0] + by_section[j][1] else "?"
                resident[f"[{name}] ({perms})"] += PAGE
    total = sum(resident.values())
    print(f"{total / 2**20:7.1f} MiB of {os.path.basename(binary)} resident in process {pid}")
    for crate, size in resident.most_common():
        if size >= 64 * 1024:
            print(f"{size / 2**20:7.2f} MiB  {crate}")


if __name__ == "__main__":
    main()
