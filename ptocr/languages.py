"""PaddleOCR 3.x's ``lang=`` codes -> the recognizer it runs for them (paddleocr 3.7's
``PaddleOCR._get_ocr_model_names`` and ``_utils/langs.py``), and which of those the zoo has.

With PP-OCRv5 (``ocr_version="PP-OCRv5"``) a language group has its own recognizer; PP-OCRv6's
recognizers read Chinese, English, Japanese and the Latin-script languages themselves, and 3.x has
no v6 model for any other code. The detector is the bundle's whatever the language.
"""

from __future__ import annotations

from ptocr.errors import PtocrError, close_names
from ptocr.manifest import load_manifest

__all__ = ["LANGUAGE_GROUPS", "PPOCRV3_ONLY_LANGUAGES", "PPOCRV6_LANGUAGES", "bundle_parts", "recognizer_for",
           "languages"]

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

_LATIN = next(codes for codes, name in LANGUAGE_GROUPS if name == "latin_PP-OCRv5_mobile_rec")
# paddleocr 3.7's _PPOCRV6_LANGS: what PP-OCRv6's recognizers read (the Latin codes but "pi").
PPOCRV6_LANGUAGES = frozenset({"ch", "chinese_cht", "en", "japan"}) | (_LATIN - {"pi"})
# Codes paddleocr 3.7 takes for PP-OCRv3 only (``ocr_version=None`` picks it; PP-OCRv5 and v6 have no
# model: "No models are available"), each with the zoo's recognizer for it.
PPOCRV3_ONLY_LANGUAGES = {"ka": "ka_PP-OCRv3_rec"}


def languages() -> list[str]:
    """Every code PaddleOCR 3.x accepts for PP-OCRv5, sorted."""
    return sorted(set().union(*(codes for codes, _ in LANGUAGE_GROUPS)))


def recognizer_for(lang: str, bundle_rec: str, generation: str = "PP-OCRv5") -> str:
    """The zoo recognizer PaddleOCR 3.x runs for ``lang`` in a bundle of ``generation``
    ("PP-OCRv5" or "PP-OCRv6") whose recognizer is ``bundle_rec`` (returned where 3.x runs the
    general model); a clear error for unknown codes and for recognizers the zoo lacks."""
    for codes, name in LANGUAGE_GROUPS:
        if lang in codes:
            break
    else:
        if lang in PPOCRV3_ONLY_LANGUAGES:
            raise PtocrError(f"lang {lang!r}: PaddleOCR 3.x reads it with PP-OCRv3 only ({lang}_PP-OCRv3_mobile_rec), "
                             f"no PP-OCRv5 or PP-OCRv6 model; give the zoo's {PPOCRV3_ONLY_LANGUAGES[lang]} as the "
                             "recognizer (--rec) instead")
        close = close_names(lang, languages())
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise PtocrError(f"lang {lang!r} is not one of PaddleOCR 3.x's language codes{hint}")
    if generation == "PP-OCRv6":
        if lang in PPOCRV6_LANGUAGES:
            return bundle_rec
        raise PtocrError(f"lang {lang!r}: PaddleOCR 3.x has no PP-OCRv6 model for it (PP-OCRv6 reads ch, "
                         "chinese_cht, en, japan and Latin-script languages); its PP-OCRv5 recognizer does: "
                         "--pipeline PP-OCRv5_server")
    if name is None:
        return bundle_rec
    if name not in load_manifest().models:
        v6 = "; or a PP-OCRv6 pipeline, which reads it" if lang in PPOCRV6_LANGUAGES else ""
        raise PtocrError(f"lang {lang!r}: PaddleOCR 3.x reads it with {name}, which ptocr's zoo does not have "
                         f"(no architecture port or weights yet); give a recognizer with --rec instead{v6}")
    return name


def bundle_parts(bundle: str, lang: str | None = None) -> dict[str, str]:
    """The bundle's parts by name, its recognizer the one PaddleOCR 3.x runs for ``lang`` (a
    PaddleOCR 3.x bundle only); the bundle's generation is its recognizer's architecture's."""
    manifest = load_manifest()
    parts = manifest.bundle(bundle)
    if lang is None:
        return parts
    if manifest.bundle_rules(bundle) != "paddleocr3":
        raise PtocrError(f"lang picks PaddleOCR 3.x's recognizers; {bundle} is a PaddleOCR 2.x bundle")
    own = manifest.models[parts["rec"]]["architecture"]
    return {**parts, "rec": recognizer_for(lang, parts["rec"], "PP-OCRv6" if own.startswith("PP-OCRv6") else "PP-OCRv5")}
