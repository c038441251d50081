"""Notes about a table (what reading, encoding and splitting decided) and its split rule: English text for the
CLI that also carries a code and values, so a user interface can word them in its own language (i18n key
``note.<code>``, read by ``interp.i18n.note_text``). UI-free."""
from __future__ import annotations

TABLE_NOTE_EN = {      # code → the English wording (the CLI's)
    "tab_rows_capped": "the file has more than {max_rows:,} rows: the first {max_rows:,} are used",
    "tab_target_rows_dropped": "dropped {n} row(s) with no value in the target column {column!r}",
    "tab_column_dropped": "column {column!r}: dropped as asked",
    "tab_column_missing": "column {column!r} is entirely missing: dropped",
    "tab_column_constant": "column {column!r} has one value ({value!r}) for every row: it carries no information; "
                           "dropped",
    "tab_column_na": "column {column!r}: {n} missing value(s) encoded as the word {word}",
    "tab_column_non_numeric": "column {column!r} is numeric but has {n} non-numeric value(s) ({examples}): treated "
                              "as missing ({word})",
    "tab_column_tied_bins": "column {column!r}: tied values merge quantile edges: {got} bins instead of {bins}",
    "tab_column_identifier": "column {column!r} has {n} distinct values (more than {most}): it looks like an "
                             "identifier or free text; dropped",
    "tab_split_auto_mpg": "train: cars of US origin; test: cars of every other origin (Europe, Japan)",
    "tab_split_column": "train: {column} = {value}; test: every other {column}",
    "tab_split_random": "random split, {share:.0%} of the rows held out for test (seed {seed})",
}


class TableNote(str):
    """A note about a table: its English text (a ``str``, so the CLI and the saved schema read it as before)
    that also carries ``code`` and ``params``."""
    code: str
    params: dict

    def __new__(cls, code: str, **params):
        self = super().__new__(cls, TABLE_NOTE_EN[code].format(**params))
        self.code, self.params = code, dict(params)
        return self

    def __reduce__(self):
        return (_make, (self.code, self.params))


def _make(code: str, params: dict) -> TableNote:
    return TableNote(code, **params)
