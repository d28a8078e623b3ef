"""How `search_files` matches a pattern against lines, with looser tiers for when the exact text is absent.

A model searches the way people type into a search box ("travel policy", "Lumo desk lamp battery"),
and the exact text is often not in the file ("# Travel policy", "Battery: the lamp runs ..."). An
empty result sends it back to guessing, so the search keeps, in one pass, the lines of three tiers
and shows the first tier that has any, saying which it is:

0. the exact text (or, with `ignore_case`, the text in any case);
1. the text in any case;
2. every word of the text (in any order and case; a few English filler words are left out).

When no line matches at all, the files whose names contain one of the words are named instead
(`travel_policy.md` for "travel policy"). Every tier is bounded by the same match limit.

A matching Markdown heading comes with the first lines of its section (`section_after`): "# Travel
policy" alone tells the model only where the answer is, and a small model answers from the heading.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# Left out of the every-word tier: requiring "the" or "of" in a line would only lose matches.
_FILLER_WORDS = frozenset({"a", "an", "the", "of", "in", "on", "for", "to", "and", "or", "is", "at", "by", "with", "from"})
_TIER_NOTES = (
    "",
    "[no line contains {pattern!r} exactly; these lines contain it in another case]",
    "[no line contains {pattern!r}; these lines contain all of its words: {words}]",
)


def pattern_words(pattern: str) -> list[str]:
    """The lower-case words of `pattern` that a looser match requires (filler words left out), in order.

    Example:
        >>> pattern_words("The Lumo desk-lamp battery")
        ['lumo', 'desk', 'lamp', 'battery']
    """
    words = [w for w in re.findall(r"\w+", pattern.lower()) if w not in _FILLER_WORDS]
    return list(dict.fromkeys(words))


# A Markdown heading ("# Title", "## Title"), in the files where "#" starts a heading rather than a comment.
_HEADING = re.compile(r"#{1,6}\s")
_MARKDOWN_SUFFIXES = (".md", ".markdown")
SECTION_LINES = 3


def section_after(path: str, lines: list[str], index: int, limit: int = SECTION_LINES) -> list[int]:
    """The indices of up to `limit` non-empty lines after `lines[index]` when it is a Markdown heading, up to the next heading.

    Example:
        >>> doc = ["# Travel policy", "", "Trains: second class.", "Flights: economy.", "## Hotels", "150 EUR"]
        >>> section_after("travel.md", doc, 0), section_after("travel.md", doc, 2), section_after("travel.py", doc, 0)
        ([2, 3], [], [])
    """
    if not path.lower().endswith(_MARKDOWN_SUFFIXES) or not _HEADING.match(lines[index].lstrip()):
        return []
    found: list[int] = []
    for number in range(index + 1, len(lines)):
        text = lines[number].strip()
        if _HEADING.match(text) or len(found) >= limit:
            break
        if text:
            found.append(number)
    return found


def shown_match(path: str, lines: list[str], index: int, max_chars: int) -> str:
    """`path:number: text` for the matching `lines[index]`, and for the first lines of its section if it is a heading.

    Example:
        >>> print(shown_match("travel.md", ["# Travel policy", "Trains: second class."], 0, 80))
        travel.md:1: # Travel policy
        travel.md:2: Trains: second class.
    """
    numbers = [index, *section_after(path, lines, index)]
    return "\n".join(f"{path}:{n + 1}: {lines[n].strip()[:max_chars]}" for n in numbers)


def named_like(path: str, words: list[str]) -> bool:
    """Whether the last part of `path` contains one of `words`, or its stem is inside one ("guide" in "guides").

    Example:
        >>> named_like("docs/product_faq.md", ["faq"]), named_like("docs/guide.md", ["guides"]), named_like("a.md", [])
        (True, True, False)
    """
    name = path.rsplit("/", 1)[-1].lower()
    stem = name.rsplit(".", 1)[0]
    return any(word in name or (len(stem) > 2 and stem in word) for word in words)


class TieredMatches:
    """The matching lines of each tier, each tier capped at `limit` lines.

    Example:
        >>> found = TieredMatches("travel policy", ignore_case=False, limit=10)
        >>> found.add("policy.md:1: # Travel policy")
        >>> found.add("policy.md:3: Policy on travel: second class")
        >>> note, lines, cut = found.result()
        >>> note, lines
        ("[no line contains 'travel policy' exactly; these lines contain it in another case]", ['policy.md:1: # Travel policy'])
    """

    def __init__(self, pattern: str, *, ignore_case: bool, limit: int) -> None:
        self.pattern = pattern
        self.limit = limit
        self._exact = pattern.lower() if ignore_case else pattern
        self._ignore_case = ignore_case
        self._folded = pattern.lower()
        words = pattern_words(pattern)
        self._all_words = words
        # One word (or none left) would only repeat tier 1.
        self._words = words if len(words) > 1 else []
        self._tiers: tuple[list[str], list[str], list[str]] = ([], [], [])
        self._capped = [False, False, False]

    def add(self, line: str, show: Callable[[], str] | None = None) -> None:
        """Sort one line into the best tier it matches; `show()` makes what the result lists (default: the line).

        `show` is called only for a line kept: a search reads up to MAX_SEARCH_BYTES, mostly lines that do not match.
        """
        folded = line.lower()
        if self._exact in (folded if self._ignore_case else line):
            tier = 0
        elif self._folded in folded:
            tier = 1
        elif self._words and all(word in folded for word in self._words):
            tier = 2
        else:
            return
        kept = self._tiers[tier]
        if len(kept) < self.limit:
            kept.append(line if show is None else show())
        else:
            self._capped[tier] = True

    @property
    def full(self) -> bool:
        """Exact matches reached the limit: nothing later can change the result, the search can stop."""
        return self._capped[0]

    def result(self) -> tuple[str, list[str], bool]:
        """The best tier's note ("" for exact matches), its lines, and whether the limit cut them.

        ("", [], False) when no line matched.
        """
        for tier, lines in enumerate(self._tiers):
            if lines:
                return _TIER_NOTES[tier].format(pattern=self.pattern, words=", ".join(self._words)), lines, self._capped[tier]
        return "", [], False

    def names_file(self, path: str) -> bool:
        """Whether the file name at the end of `path` contains one of the pattern's words.

        Example:
            >>> TieredMatches("travel policy", ignore_case=False, limit=10).names_file("docs/travel_policy.md")
            True
        """
        return named_like(path, self._all_words)
