#!/usr/bin/env python3
"""Writes src/text/unicode_tables.h: the Unicode data the tokenizer needs, from Python's unicodedata.

The pre-tokenizer patterns of Hugging Face tokenizers use \\p{L}, \\p{N} and \\s (Oniguruma, where \\s
is the White_Space property), and the NFC normalizer needs canonical decompositions, combining
classes and the primary composites. std::regex knows none of these, so the tables are generated
once and committed; rerun after a Python upgrade to move to its Unicode version:

    python scripts/gen_unicode_tables.py > src/text/unicode_tables.h
"""

from __future__ import annotations

import sys
import unicodedata

MAX_CP = 0x110000

# The White_Space property (PropList.txt), which is what Oniguruma's \s and Rust's
# char::is_whitespace test. Python's str.isspace() also counts U+001C..U+001F (bidi class B/S),
# so the table is derived from it minus those four and checked against this list.
WHITE_SPACE = ([*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029,
                0x202F, 0x205F, 0x3000])


def ranges(pred) -> list[tuple[int, int]]:
    """Inclusive [lo, hi] runs of code points where pred holds."""
    out: list[tuple[int, int]] = []
    start = None
    for cp in range(MAX_CP + 1):
        hit = cp < MAX_CP and pred(cp)
        if hit and start is None:
            start = cp
        elif not hit and start is not None:
            out.append((start, cp - 1))
            start = None
    return out


def runs(cps: list[int]) -> list[tuple[int, int]]:
    """Inclusive [lo, hi] runs of a sorted list of code points."""
    out: list[tuple[int, int]] = []
    for cp in cps:
        if out and out[-1][1] == cp - 1:
            out[-1] = (out[-1][0], cp)
        else:
            out.append((cp, cp))
    return out


def category_ranges(prefix: str) -> list[tuple[int, int]]:
    return ranges(lambda cp: unicodedata.category(chr(cp)).startswith(prefix))


def white_space() -> list[int]:
    derived = [cp for cp in range(MAX_CP) if chr(cp).isspace() and not 0x1C <= cp <= 0x1F]
    if derived != WHITE_SPACE:
        raise SystemExit(f"White_Space derived from str.isspace() changed: {derived}")
    return derived


def canonical_decomposition(cp: int) -> list[int] | None:
    d = unicodedata.decomposition(chr(cp))
    if not d or d.startswith("<"):
        return None
    return [int(x, 16) for x in d.split()]


def combining_class_ranges() -> list[tuple[int, int, int]]:
    """[lo, hi, ccc] runs of equal non-zero canonical combining class."""
    out: list[tuple[int, int, int]] = []
    for cp in range(MAX_CP):
        ccc = unicodedata.combining(chr(cp))
        if ccc == 0:
            continue
        if out and out[-1][1] == cp - 1 and out[-1][2] == ccc:
            out[-1] = (out[-1][0], cp, ccc)
        else:
            out.append((cp, cp, ccc))
    return out


def decompositions() -> list[tuple[int, int, int]]:
    """(code point, first, second or 0): one level of canonical decomposition (Hangul syllables are
    algorithmic and absent); the runtime applies it recursively."""
    out = []
    for cp in range(MAX_CP):
        d = canonical_decomposition(cp)
        if d is None:
            continue
        if len(d) not in (1, 2):
            raise SystemExit(f"U+{cp:04X}: canonical decomposition of length {len(d)}")
        out.append((cp, d[0], d[1] if len(d) == 2 else 0))
    return out


def compositions() -> list[tuple[int, int, int]]:
    """(first, second, composite) for every primary composite: a code point with a two-element
    canonical decomposition that NFC leaves alone (that excludes the composition exclusions and the
    non-starter decompositions)."""
    out = []
    for cp in range(MAX_CP):
        d = canonical_decomposition(cp)
        if d is None or len(d) != 2:
            continue
        if unicodedata.normalize("NFC", chr(cp)) != chr(cp):
            continue
        out.append((d[0], d[1], cp))
    out.sort()
    return out


def emit_pairs(name: str, rows: list[tuple[int, int]], per_line: int = 4) -> str:
    lines = [f"inline constexpr CodePointRange {name}[] = {{"]
    for i in range(0, len(rows), per_line):
        chunk = rows[i:i + per_line]
        lines.append("    " + " ".join(f"{{0x{lo:04X}, 0x{hi:04X}}}," for lo, hi in chunk))
    lines.append("};")
    return "\n".join(lines)


def emit_triples(name: str, type_name: str, rows: list[tuple[int, int, int]], per_line: int = 3) -> str:
    lines = [f"inline constexpr {type_name} {name}[] = {{"]
    for i in range(0, len(rows), per_line):
        chunk = rows[i:i + per_line]
        lines.append("    " + " ".join(f"{{0x{a:04X}, 0x{b:04X}, 0x{c:X}}}," for a, b, c in chunk))
    lines.append("};")
    return "\n".join(lines)


def main() -> None:
    letters = category_ranges("L")
    numbers = category_ranges("N")
    spaces = white_space()
    space_ranges = runs(spaces)
    ccc = combining_class_ranges()
    decomp = decompositions()
    comp = compositions()
    out = sys.stdout
    out.write(f"""// Generated by scripts/gen_unicode_tables.py from Python {sys.version.split()[0]}'s unicodedata,
// Unicode {unicodedata.unidata_version}. Do not edit; rerun the script instead.
//
// Letters are the general categories L* (\\p{{L}}), numbers N* (\\p{{N}}), spaces the White_Space
// property (\\s in Oniguruma, char::is_whitespace in Rust). The NFC tables hold one level of
// canonical decomposition, the non-zero canonical combining classes and the primary composites.
// clang-format off
#pragma once

#include <cstdint>

namespace bf::text::unicode_data {{

inline constexpr const char* kUnicodeVersion = "{unicodedata.unidata_version}";

struct CodePointRange {{
  uint32_t lo, hi;  // inclusive
}};
struct CombiningClassRange {{
  uint32_t lo, hi;  // inclusive
  uint32_t ccc;
}};
struct Decomposition {{
  uint32_t code_point, first, second;  // second is 0 for a singleton
}};
struct Composition {{
  uint32_t first, second, composite;  // sorted by (first, second)
}};

""")
    out.write(emit_pairs("kLetterRanges", letters) + "\n\n")
    out.write(emit_pairs("kNumberRanges", numbers) + "\n\n")
    out.write(emit_pairs("kWhiteSpaceRanges", space_ranges) + "\n\n")
    out.write(emit_triples("kCombiningClassRanges", "CombiningClassRange", ccc) + "\n\n")
    out.write(emit_triples("kDecompositions", "Decomposition", decomp) + "\n\n")
    out.write(emit_triples("kCompositions", "Composition", comp) + "\n\n")
    out.write("}  // namespace bf::text::unicode_data\n")


if __name__ == "__main__":
    main()
