"""PaddleOCR 3.x's ``lang=`` codes -> the recognizer it runs for them (paddleocr 3.7's
``PaddleOCR._get_ocr_model_names`` and ``_utils/langs.py``), and which of those the zoo has.

Each generation has its own rules. PP-OCRv5 (``ocr_version="PP-OCRv5"``): a language group has its
own recognizer. PP-OCRv6's recognizers read Chinese, English, Japanese and the Latin-script
languages themselves, and 3.x has no v6 model for any other code. PP-OCRv4: Chinese (the bundle's
recognizer) and English only. PP-OCRv3: the Latin, Arabic, Cyrillic and Devanagari groups, then
one recognizer per code for en, korean, japan, chinese_cht, te, ka and ta. The detector is the
bundle's whatever the language.
"""

from __future__ import annotations

import re

from ptocr.errors import PtocrError, close_names
from ptocr.manifest import load_manifest

__all__ = ["GENERATION_GROUPS", "LANGUAGE_GROUPS", "LANGUAGE_NAMES", "PPOCRV3_ONLY_LANGUAGES", "PPOCRV6_LANGUAGES",
           "bundle_parts", "generation_of", "recognizer_for", "languages"]

# (codes, recognizer) in PaddleOCR 3.x's order of tests: the first group holding a code wins
# ("ku" is Latin and Arabic -> Latin; "ru", "be", "uk" are East Slavic before Cyrillic).
# None: the bundle's own recognizer (the general PP-OCRv5 model reads these).
LANGUAGE_GROUPS: tuple[tuple[frozenset[str], str | None], ...] = (
    (frozenset({"ch", "chinese_cht", "japan"}), None),
    (frozenset({"en"}), "en_PP-OCRv5_mobile_rec"),
    (frozenset({
        "af", "az", "bs", "cs", "cy", "da", "de", "es", "et", "fr", "ga", "hr", "hu", "id", "is", "it", "ku",
        "la", "lt", "lv", "mi", "ms", "mt", "nl", "no", "oc", "pi", "pl", "pt", "ro", "rs_latin", "sk", "sl",
        "sq", "sv", "sw", "tl", "tr", "uz", "vi", "french", "german", "fi", "eu", "gl", "lb", "rm", "ca", "qu",
    }), "latin_PP-OCRv5_mobile_rec"),
    (frozenset({"ru", "be", "uk"}), "eslav_PP-OCRv5_mobile_rec"),
    (frozenset({"ar", "fa", "ug", "ur", "ps", "ku", "sd", "bal"}), "arabic_PP-OCRv5_mobile_rec"),
    (frozenset({
        "ru", "rs_cyrillic", "be", "bg", "uk", "mn", "abq", "ady", "kbd", "ava", "dar", "inh", "che", "lbe",
        "lez", "tab", "kk", "ky", "tg", "mk", "tt", "cv", "ba", "mhr", "mo", "udm", "kv", "os", "bua", "xal",
        "tyv", "sah", "kaa",
    }), "cyrillic_PP-OCRv5_mobile_rec"),
    (frozenset({
        "hi", "mr", "ne", "bh", "mai", "ang", "bho", "mah", "sck", "new", "gom", "sa", "bgc",
    }), "devanagari_PP-OCRv5_mobile_rec"),
    (frozenset({"korean"}), "korean_PP-OCRv5_mobile_rec"),
    (frozenset({"th"}), "th_PP-OCRv5_mobile_rec"),
    (frozenset({"el"}), "el_PP-OCRv5_mobile_rec"),
    (frozenset({"te"}), "te_PP-OCRv5_mobile_rec"),
    (frozenset({"ta"}), "ta_PP-OCRv5_mobile_rec"),
)

def _codes(recognizer: str) -> frozenset[str]:
    return next(codes for codes, name in LANGUAGE_GROUPS if name == recognizer)


_LATIN = _codes("latin_PP-OCRv5_mobile_rec")
# paddleocr 3.7's _PPOCRV6_LANGS: what PP-OCRv6's recognizers read (the Latin codes but "pi").
PPOCRV6_LANGUAGES = frozenset({"ch", "chinese_cht", "en", "japan"}) | (_LATIN - {"pi"})
# PP-OCRv3's groups in 3.7's order (no East Slavic one: "ru", "be", "uk" are Cyrillic there), then
# its codes with a recognizer each; "ch" the bundle's own.
_PPOCRV3_GROUPS = (
    (_LATIN, "latin_PP-OCRv3_mobile_rec"),
    (_codes("arabic_PP-OCRv5_mobile_rec"), "arabic_PP-OCRv3_mobile_rec"),
    (_codes("cyrillic_PP-OCRv5_mobile_rec"), "cyrillic_PP-OCRv3_mobile_rec"),
    (_codes("devanagari_PP-OCRv5_mobile_rec"), "devanagari_PP-OCRv3_mobile_rec"),
    (frozenset({"ch"}), None),
    *((frozenset({code}), f"{code}_PP-OCRv3_mobile_rec")
      for code in ("en", "korean", "japan", "chinese_cht", "te", "ka", "ta")),
)
# (codes, recognizer) per generation; PP-OCRv6 keeps its own recognizer for PPOCRV6_LANGUAGES.
GENERATION_GROUPS: dict[str, tuple[tuple[frozenset[str], str | None], ...]] = {
    "PP-OCRv3": _PPOCRV3_GROUPS,
    "PP-OCRv4": ((frozenset({"ch"}), None), (frozenset({"en"}), "en_PP-OCRv4_mobile_rec")),
    "PP-OCRv5": LANGUAGE_GROUPS,
    "PP-OCRv6": ((PPOCRV6_LANGUAGES, None),),
}
_CODES_OF = {generation: frozenset().union(*(codes for codes, _ in groups))
             for generation, groups in GENERATION_GROUPS.items()}
# Every code paddleocr 3.7 takes, for some generation.
_KNOWN_CODES = frozenset().union(*_CODES_OF.values())
# Codes paddleocr 3.7 takes for PP-OCRv3 only ("ka"): ``ocr_version=None`` picks PP-OCRv3 for them.
PPOCRV3_ONLY_LANGUAGES = _CODES_OF["PP-OCRv3"] - _CODES_OF["PP-OCRv4"] - _CODES_OF["PP-OCRv5"] - _CODES_OF["PP-OCRv6"]


# Language names as users type them -> PaddleOCR 3.x's codes, for the hint of an unknown code: 3.x
# mixes ISO codes with names of its own ("ka" is Kannada, "japan", "korean"), and a near spelling of
# "kannada" is "kaa" (Karakalpak), not "ka".
LANGUAGE_NAMES: dict[str, tuple[str, ...]] = {
    "afrikaans": ("af",), "albanian": ("sq",), "arabic": ("ar",), "azerbaijani": ("az",), "bashkir": ("ba",),
    "basque": ("eu",), "belarusian": ("be",), "bosnian": ("bs",), "bulgarian": ("bg",), "catalan": ("ca",),
    "chechen": ("che",), "chinese": ("ch", "chinese_cht"), "chuvash": ("cv",), "croatian": ("hr",),
    "czech": ("cs",), "danish": ("da",), "dutch": ("nl",), "english": ("en",), "estonian": ("et",),
    "finnish": ("fi",), "french": ("fr",), "galician": ("gl",), "greek": ("el",), "hindi": ("hi",),
    "hungarian": ("hu",), "icelandic": ("is",), "indonesian": ("id",), "irish": ("ga",), "italian": ("it",),
    "japanese": ("japan",), "kannada": ("ka",), "karakalpak": ("kaa",), "kazakh": ("kk",), "kurdish": ("ku",),
    "kyrgyz": ("ky",), "latin": ("la",), "latvian": ("lv",), "lithuanian": ("lt",), "luxembourgish": ("lb",),
    "macedonian": ("mk",), "malay": ("ms",), "maltese": ("mt",), "maori": ("mi",), "marathi": ("mr",),
    "mongolian": ("mn",), "nepali": ("ne",), "norwegian": ("no",), "occitan": ("oc",), "pashto": ("ps",),
    "persian": ("fa",), "farsi": ("fa",), "polish": ("pl",), "portuguese": ("pt",), "romanian": ("ro",),
    "russian": ("ru",), "sanskrit": ("sa",), "serbian": ("rs_latin", "rs_cyrillic"), "sindhi": ("sd",),
    "slovak": ("sk",), "slovenian": ("sl",), "spanish": ("es",), "swahili": ("sw",), "swedish": ("sv",),
    "tagalog": ("tl",), "tajik": ("tg",), "tamil": ("ta",), "tatar": ("tt",), "telugu": ("te",), "thai": ("th",),
    "turkish": ("tr",), "ukrainian": ("uk",), "urdu": ("ur",), "uyghur": ("ug",), "uzbek": ("uz",),
    "vietnamese": ("vi",), "welsh": ("cy",),
}


def languages() -> list[str]:
    """Every code PaddleOCR 3.x accepts for PP-OCRv5, sorted."""
    return sorted(set().union(*(codes for codes, _ in LANGUAGE_GROUPS)))


def recognizer_for(lang: str, bundle_rec: str, generation: str = "PP-OCRv5") -> str:
    """The zoo recognizer PaddleOCR 3.x runs for ``lang`` in a bundle of ``generation``
    ("PP-OCRv3" to "PP-OCRv6") whose recognizer is ``bundle_rec`` (returned where 3.x runs the
    general model); a clear error for unknown codes, for codes the generation has no model for
    (3.7: "No models are available") and for recognizers the zoo lacks."""
    if generation not in GENERATION_GROUPS:
        raise PtocrError(f"{generation!r} is not a PP-OCR generation PaddleOCR 3.x has language rules for "
                         f"({', '.join(GENERATION_GROUPS)})")
    name = next((n or bundle_rec for codes, n in GENERATION_GROUPS[generation] if lang in codes), None)
    if name is None:
        if lang not in _KNOWN_CODES:
            close = LANGUAGE_NAMES.get(lang.strip().lower()) or close_names(lang, _KNOWN_CODES)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise PtocrError(f"lang {lang!r} is not one of PaddleOCR 3.x's language codes{hint}")
        readers = [g for g, codes in _CODES_OF.items() if lang in codes]
        only = " only" if len(readers) == 1 else ""
        raise PtocrError(f"lang {lang!r}: PaddleOCR 3.x has no {generation} model for it; it reads it with "
                         f"{' or '.join(readers)}{only}: give ocr_version={readers[-1]!r}, or a pipeline of "
                         f"{readers[-1]} (--pipeline {' or '.join(_bundles_of(readers[-1]))})")
    if name not in load_manifest().models:
        v6 = "; or a PP-OCRv6 pipeline, which reads it" if lang in PPOCRV6_LANGUAGES else ""
        raise PtocrError(f"lang {lang!r}: PaddleOCR 3.x reads it with {name}, which ptocr's zoo does not have "
                         f"(no architecture port or weights yet); give a recognizer with --rec instead{v6}")
    return name


def _bundles_of(generation: str) -> list[str]:
    manifest = load_manifest()
    return [b for b in manifest.bundles if manifest.bundle_rules(b) == "paddleocr3"
            and generation_of(manifest.bundle(b)["rec"]) == generation]


def generation_of(recognizer: str) -> str:
    """The PP-OCR generation of a PaddleOCR 3.x recognizer, from its official name
    (``PP-OCRv4_mobile_rec``, ``latin_PP-OCRv3_mobile_rec``): what its bundle's ``lang`` follows."""
    found = re.search(r"(?:^|_)(PP-OCRv\d+)_", recognizer)
    if found is None or found.group(1) not in GENERATION_GROUPS:
        raise PtocrError(f"{recognizer} names no PP-OCR generation ({', '.join(GENERATION_GROUPS)}): "
                         "lang cannot pick a recognizer for its bundle")
    return found.group(1)


def bundle_parts(bundle: str, lang: str | None = None) -> dict[str, str]:
    """The bundle's parts by name, its recognizer the one PaddleOCR 3.x runs for ``lang`` (a
    PaddleOCR 3.x bundle only); the bundle's generation is its recognizer's."""
    manifest = load_manifest()
    parts = manifest.bundle(bundle)
    if lang is None:
        return parts
    if manifest.bundle_rules(bundle) != "paddleocr3":
        raise PtocrError(f"lang picks PaddleOCR 3.x's recognizers; {bundle} is a PaddleOCR 2.x bundle")
    return {**parts, "rec": recognizer_for(lang, parts["rec"], generation_of(parts["rec"]))}
