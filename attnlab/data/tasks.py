"""Translation tasks: (source, target) sentence pairs with train / validation / test splits.

Built-in task families (``load_task(spec)``):

- ``dates-<src>-<tgt>``: a random date (1900-2100) written in full by Babel in locale ``src``,
  translated to the same date in full in locale ``tgt``, or to ISO form when ``tgt`` is ``iso``:
  ``dates-fr-en``: "mercredi 9 mai 2018" -> "Wednesday, May 9, 2018". Word order changes between
  locales, so the alignment matters. Any locale Babel knows (``de``, ``es``, ``pt_BR``, ``ja``...).
- ``copy`` and ``reverse``: random strings of lowercase letters -> the same string / reversed.
- a path to a TSV file of ``source<TAB>target`` lines (UTF-8).

``k`` joins k items into one sentence on each side (separated by ``" ; "``), so source length can
be swept: the Bahdanau paper's length experiment. Pairs are deduplicated by source, shuffled with
``seed`` and split 80/10/10, so no source sentence appears in two splits.

:func:`encode_pairs` turns a list of pairs into padded tensors with masks for a seq2seq model.
"""

from __future__ import annotations

import random
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from attnlab.errors import AttnlabError

Pair = tuple[str, str]
SEPARATOR = " ; "
FIRST_DATE = date(1900, 1, 1)
LAST_DATE = date(2100, 12, 31)
SYMBOLS = string.ascii_lowercase
SYMBOL_LENGTHS = (3, 12)  # per item; k items make a string of 3k..12k symbols
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
MAX_PAIRS = 2_000_000
MAX_PAIR_CHARS = 1_000  # characters on each side of a pair in a TSV file (sentences, not documents)


@dataclass
class TranslationData:
    """A translation task's pairs, split three ways; no source sentence is in two splits."""

    name: str
    train: list[Pair]
    val: list[Pair]
    test: list[Pair]
    description: str = field(default="", compare=False)

    def split(self, name: str) -> list[Pair]:
        if name not in ("train", "val", "test"):
            raise AttnlabError(f"unknown split {name!r}; choose train, val or test")
        return getattr(self, name)

    def text(self, side: str, splits: Sequence[str] = ("train",)) -> str:
        """All sources (``side="source"``) or targets of the given splits, one per line: what a
        tokenizer for that side is trained on (the training split only, by default)."""
        if side not in ("source", "target"):
            raise AttnlabError(f"side must be 'source' or 'target', got {side!r}")
        column = 0 if side == "source" else 1
        return "\n".join(pair[column] for s in splits for pair in self.split(s))

    def __repr__(self) -> str:
        sizes = f"train={len(self.train)}, val={len(self.val)}, test={len(self.test)}"
        return f"TranslationData({self.name!r}, {sizes})"


def list_tasks() -> dict[str, str]:
    """The built-in task families with a one-line description each."""
    return {
        "dates-<src>-<tgt>": (
            "a date written in full in locale src -> the same date in locale tgt, or 'iso' "
            "(e.g. dates-fr-en: 'mercredi 9 mai 2018' -> 'Wednesday, May 9, 2018'; any Babel locale)"
        ),
        "copy": "random lowercase strings (3-12 letters per item) -> the same string",
        "reverse": "random lowercase strings (3-12 letters per item) -> the string reversed",
        "PATH.tsv": "your own pairs: a UTF-8 file of source<TAB>target lines",
    }


# --------------------------------------------------------------------------- generated tasks


def _parse_locale(name: str) -> Any:
    """A Babel ``Locale`` for a locale code Babel has data for (``fr``, ``pt_BR``), else None."""
    from babel import Locale, localedata

    identifier = localedata.normalize_locale(name) if name else None
    return Locale.parse(identifier) if identifier else None


def _date_locales(spec: str) -> tuple[Any, Any]:
    """``dates-fr-en`` -> (Locale fr, Locale en); the target may be ``iso`` (returned as None)."""
    parts = spec.split("-")[1:]
    if len(parts) >= 2:
        for cut in range(1, len(parts)):  # also accept hyphenated locales: dates-pt-BR-en
            src_name, tgt_name = "_".join(parts[:cut]), "_".join(parts[cut:])
            src = _parse_locale(src_name)
            tgt = None if tgt_name.lower() == "iso" else _parse_locale(tgt_name)
            if src is not None and (tgt is not None or tgt_name.lower() == "iso"):
                return src, tgt
    names = [p for p in parts if p.lower() != "iso" and _parse_locale(p) is None]
    hint = f" Babel does not know the locale {names[0]!r}." if names else ""
    raise AttnlabError(
        f"cannot read the task {spec!r}: write dates-<src>-<tgt> with two Babel locale codes "
        f"(e.g. dates-fr-en, dates-de-en, dates-pt_BR-iso; the target may be 'iso').{hint}"
    )


def _random_date(rng: random.Random) -> date:
    return FIRST_DATE + timedelta(days=rng.randrange((LAST_DATE - FIRST_DATE).days + 1))


def _date_pair_maker(spec: str):
    from babel.dates import format_date

    src, tgt = _date_locales(spec)

    def make(rng: random.Random, k: int) -> Pair:
        days = [_random_date(rng) for _ in range(k)]
        source = SEPARATOR.join(format_date(d, format="full", locale=src) for d in days)
        if tgt is None:
            target = SEPARATOR.join(d.isoformat() for d in days)
        else:
            target = SEPARATOR.join(format_date(d, format="full", locale=tgt) for d in days)
        return source, target

    return make


def _symbol_pair_maker(reverse: bool):
    low, high = SYMBOL_LENGTHS

    def make(rng: random.Random, k: int) -> Pair:
        text = "".join(rng.choice(SYMBOLS) for _ in range(rng.randint(low * k, high * k)))
        return text, text[::-1] if reverse else text

    return make


def _generate(spec: str, make, n_pairs: int, k: int, rng: random.Random) -> list[Pair]:
    pairs: dict[str, str] = {}
    repeats = 0  # give up when repeats outnumber what is asked for: the task has run out of pairs
    while len(pairs) < n_pairs and repeats <= n_pairs + 1000:
        source, target = make(rng, k)
        repeats += source in pairs
        pairs.setdefault(source, target)
    if len(pairs) < n_pairs:
        raise AttnlabError(
            f"{spec} with k={k} has too few distinct pairs for n_pairs={n_pairs} "
            f"(found {len(pairs)}); ask for fewer pairs or a larger k"
        )
    return list(pairs.items())


# --------------------------------------------------------------------------- TSV files


def _read_tsv(path: Path) -> list[Pair]:
    """The distinct pairs of a TSV file, read one line at a time.

    Each side holds at most ``MAX_PAIR_CHARS`` characters and the file at most ``MAX_PAIRS`` distinct
    pairs, so memory stays bounded however long the file is (repeated sources and blank lines cost
    nothing); a longer line is refused before it is read whole.
    """
    line_limit = 2 * 4 * MAX_PAIR_CHARS + 16  # two sides of UTF-8 (at most 4 bytes a character), a tab, CR LF
    pairs: dict[str, str] = {}  # first target wins for a repeated source
    seen_text = False
    try:
        with open(path, "rb") as f:
            number = 0
            while raw := f.readline(line_limit + 1):
                number += 1
                if len(raw) > line_limit and not raw.endswith(b"\n"):
                    raise AttnlabError(f"{path}, line {number}: longer than {line_limit:,} bytes; a pair holds at "
                                       f"most {MAX_PAIR_CHARS:,} characters a side")
                pair = _tsv_pair(path, number, raw)
                if pair is None:
                    continue
                seen_text = True
                if pair[0] not in pairs:
                    if len(pairs) >= MAX_PAIRS:
                        raise AttnlabError(f"{path} has more than {MAX_PAIRS:,} distinct pairs; use a part of it")
                    pairs[pair[0]] = pair[1]
    except OSError as err:
        raise AttnlabError(f"cannot read {path}: {err.strerror or err}") from None
    if not seen_text:
        raise AttnlabError(f"{path} is empty; write one 'source<TAB>target' pair per line")
    return list(pairs.items())


def _tsv_pair(path: Path, number: int, raw: bytes) -> Pair | None:
    """One TSV line as (source, target); None for a blank line."""
    try:
        line = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise AttnlabError(f"{path}, line {number}: not valid UTF-8; save the file as UTF-8") from None
    if number == 1:
        line = line.removeprefix("\ufeff")
    if not line.strip():
        return None  # blank lines are allowed
    if "\t" not in line:
        raise AttnlabError(f"{path}, line {number}: no tab; write 'source<TAB>target' ({line[:60]!r})")
    if line.count("\t") > 1:
        raise AttnlabError(f"{path}, line {number}: more than one tab; write exactly one 'source<TAB>target'")
    source, target = (side.strip() for side in line.split("\t"))
    if not source or not target:
        side = "source" if not source else "target"
        raise AttnlabError(f"{path}, line {number}: the {side} is empty")
    for side, text in (("source", source), ("target", target)):
        if len(text) > MAX_PAIR_CHARS:
            raise AttnlabError(f"{path}, line {number}: the {side} is {len(text):,} characters long; a "
                               f"translation pair holds at most {MAX_PAIR_CHARS:,} characters a side")
    return source, target


# --------------------------------------------------------------------------- loading and splitting


def _split(pairs: list[Pair], rng: random.Random) -> tuple[list[Pair], list[Pair], list[Pair]]:
    if len(pairs) < 3:
        raise AttnlabError(f"need at least 3 distinct pairs to make train/val/test splits, got {len(pairs)}")
    pairs = list(pairs)
    rng.shuffle(pairs)
    n_val = max(1, round(len(pairs) * SPLIT_FRACTIONS[1]))
    n_test = max(1, round(len(pairs) * SPLIT_FRACTIONS[2]))
    n_train = len(pairs) - n_val - n_test
    return pairs[:n_train], pairs[n_train : n_train + n_val], pairs[n_train + n_val :]


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise AttnlabError(f"{name} must be an integer of at least {minimum}, got {value!r}")
    return value


def load_task(spec: str, n_pairs: int = 20000, k: int = 1, seed: int = 0) -> TranslationData:
    """Make or read a translation task; see the module docstring for ``spec``.

    ``n_pairs`` distinct pairs are generated (for a TSV file: every distinct pair in it), ``k``
    items are joined per sentence (generated tasks only), ``seed`` fixes everything.
    """
    spec = str(spec)
    _check_int("k", k, 1)
    rng = random.Random(seed)
    path = Path(spec).expanduser()
    if spec.startswith("dates-") or spec in ("copy", "reverse"):
        _check_int("n_pairs", n_pairs, 3)
        if n_pairs > MAX_PAIRS:
            raise AttnlabError(f"n_pairs must be at most {MAX_PAIRS:,}, got {n_pairs:,}")
        n_days = (LAST_DATE - FIRST_DATE).days + 1
        if spec.startswith("dates-") and k == 1 and n_pairs > n_days:
            raise AttnlabError(
                f"there are only {n_days:,} dates from {FIRST_DATE.year} to {LAST_DATE.year}; "
                f"ask for at most that many pairs with k=1 (got n_pairs={n_pairs:,}), or use k >= 2"
            )
        make = _date_pair_maker(spec) if spec.startswith("dates-") else _symbol_pair_maker(spec == "reverse")
        pairs = _generate(spec, make, n_pairs, k, rng)
        name = spec if k == 1 else f"{spec}-k{k}"
        description = list_tasks()["dates-<src>-<tgt>" if spec.startswith("dates-") else spec]
    elif path.is_file():
        if k != 1:
            raise AttnlabError("k (items joined per sentence) only applies to generated tasks, not TSV files")
        pairs = _read_tsv(path)
        name, description = path.stem, f"pairs from {path}"
    elif path.exists():
        raise AttnlabError(f"{path} is not a file; give a TSV file of 'source<TAB>target' lines")
    else:
        raise AttnlabError(
            f"unknown task {spec!r}: use dates-<src>-<tgt> (e.g. dates-fr-en), copy, reverse, "
            "or the path of an existing TSV file"
        )
    train, val, test = _split(pairs, rng)
    return TranslationData(name, train, val, test, description)


# --------------------------------------------------------------------------- batching


def encode_pairs(pairs: Sequence[Pair], src_tok: Any, tgt_tok: Any) -> dict[str, Any]:
    """Encode and pad a batch of pairs for a seq2seq model (teacher forcing).

    Returns LongTensors ``src`` (B, S), ``tgt_in`` (B, T) = ``<bos>`` + target, ``tgt_out``
    (B, T) = target + ``<eos>``, the bool masks ``src_mask`` (B, S) and ``tgt_mask`` (B, T)
    (True = a real token, False = padding), and ``src_lengths`` (B,). Padding uses each side's
    ``<pad>`` id; text the tokenizers do not know becomes ``<unk>``.
    """

    if not pairs:
        raise AttnlabError("encode_pairs needs at least one pair")
    for side, tok, needed in (
        ("source", src_tok, ("pad_id",)),
        ("target", tgt_tok, ("pad_id", "bos_id", "eos_id")),
    ):
        missing = [n for n in needed if getattr(tok, n, None) is None]
        if missing:
            raise AttnlabError(
                f"the {side} tokenizer has no {', '.join(m[:-3] for m in missing)} token; "
                "train it with specials=SEQ2SEQ_SPECIALS"
            )
    sources = [src_tok.encode(source) for source, _ in pairs]
    targets = [tgt_tok.encode(target) for _, target in pairs]
    if any(not ids for ids in sources):
        raise AttnlabError("a source sentence encodes to no tokens; every source needs some text")

    src, src_mask = pad_rows(sources, src_tok.pad_id)
    tgt_in, tgt_mask = pad_rows([[tgt_tok.bos_id, *t] for t in targets], tgt_tok.pad_id)
    tgt_out, _ = pad_rows([[*t, tgt_tok.eos_id] for t in targets], tgt_tok.pad_id)
    return {
        "src": src,
        "src_mask": src_mask,
        "src_lengths": src_mask.sum(dim=1),
        "tgt_in": tgt_in,
        "tgt_out": tgt_out,
        "tgt_mask": tgt_mask,
    }


def pad_rows(rows: list[list[int]], pad: int) -> tuple[Any, Any]:
    """Id lists -> (ids (B, width) padded with ``pad``, mask (B, width): True at real tokens)."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = True
    return ids, mask
