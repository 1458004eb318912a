"""ELIZA (Weizenbaum, 1966): keyword rules, decomposition and reassembly, no learning.

>>> from attnlab.eliza import Eliza
>>> Eliza().reply("I remember my first bicycle")
'How do you feel when you remember your first bicycle?'

The package, one job per module (no PyTorch anywhere):

- :mod:`~attnlab.eliza.script`: the script language (the :class:`Script` and its parts, the
  checks, the plain text form, :func:`parse_script`);
- :mod:`~attnlab.eliza.structured`: the YAML/JSON form, read without aliases;
- :mod:`~attnlab.eliza.loading`: :func:`load_script` (a file, size-capped) and
  :func:`builtin_script` (``scripts/doctor.txt``, our own DOCTOR-style script);
- :mod:`~attnlab.eliza.matcher`: clauses, substitutions, pattern matching;
- :mod:`~attnlab.eliza.bot`: :class:`Eliza`, and the :class:`Trace` of how a reply was made.

How a reply is made and how to write a script: ``docs/eliza-script.md``.
"""

from attnlab.eliza.bot import DEFAULT_REPLY, MAX_LINKS, MEMORY_SIZE, Eliza, Step, Trace
from attnlab.eliza.loading import DEFAULT_SCRIPT, MAX_SCRIPT_BYTES, builtin_script, load_script
from attnlab.eliza.matcher import MAX_INPUT_CHARS, Token, match, split_clauses, substitute
from attnlab.eliza.script import Decomposition, Element, Keyword, Reassembly, Script, parse_script
from attnlab.eliza.structured import parse_structured

__all__ = [
    "DEFAULT_REPLY",
    "DEFAULT_SCRIPT",
    "MAX_INPUT_CHARS",
    "MAX_LINKS",
    "MAX_SCRIPT_BYTES",
    "MEMORY_SIZE",
    "Decomposition",
    "Element",
    "Eliza",
    "Keyword",
    "Reassembly",
    "Script",
    "Step",
    "Token",
    "Trace",
    "builtin_script",
    "load_script",
    "match",
    "parse_script",
    "parse_structured",
    "split_clauses",
    "substitute",
]
