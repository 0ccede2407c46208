"""Sphinx extension: one citation style, author-year, in the text and in the list of references.

The text cites as "[Kingma and Ba, 2015]" (``bibtex_reference_style: author_year``); pybtex's default
list style labels the same entry "[KB15]". This registers the pybtex style ``authoryear`` (set as
``bibtex_default_style``): the unsrt formatting with the label the text uses, sorted by author and year.
"""

from collections import Counter

from pybtex.plugin import register_plugin
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle


def _surnames(entry):
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [" ".join(p.prelast_names + p.last_names).replace("{", "").replace("}", "") for p in people]
    if not names:
        return entry.fields.get("key", "Anon")
    if len(names) == 1:
        return names[0]
    if len(names) == 2:
        return f"{names[0]} and {names[1]}"
    return f"{names[0]} et al."


class AuthorYearLabels(BaseLabelStyle):
    def format_labels(self, sorted_entries):
        entries = list(sorted_entries)
        labels = [f"{_surnames(e)}, {e.fields.get('year', 'n.d.')}" for e in entries]
        repeated, seen = Counter(labels), Counter()
        for label in labels:
            if repeated[label] > 1:  # two works by the same authors in one year: 2019a, 2019b
                seen[label] += 1
                label += "abcdefghijklmnopqrstuvwxyz"[seen[label] - 1]
            yield label


class AuthorYearStyle(UnsrtStyle):
    default_label_style = "authoryear"
    default_sorting_style = "author_year_title"


def setup(app):
    register_plugin("pybtex.style.labels", "authoryear", AuthorYearLabels)
    register_plugin("pybtex.style.formatting", "authoryear", AuthorYearStyle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
